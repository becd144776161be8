# syntax=docker/dockerfile:1
# Two images from one file: `--target api` (the model service) and `--target ui` (Streamlit).
# Pins: the base image tag here; Python packages exactly as pyproject.toml pins them, by group
# (scripts/pins.py): the api image the library's core and the `api` extra (no Streamlit), the ui
# image the `ui` extra alone (no torch).
FROM python:3.11.14-slim-bookworm AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# The code runs from /app uninstalled; `streamlit run` would otherwise see only the script's folder.
ENV PYTHONPATH=/app
RUN useradd --create-home --uid 10001 app
WORKDIR /app
COPY pyproject.toml ./
COPY scripts/pins.py ./scripts/

FROM base AS api
RUN python scripts/pins.py core api > /tmp/requirements.txt && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY model_api ./model_api
RUN mkdir -p /var/lib/clip && chown app:app /var/lib/clip
# The named volume mounts here; it starts out owned by `app` because this directory is.
# CLIP_PORT is the API's `port` setting (model_api/settings.py, same default): the server, the
# healthcheck and EXPOSE all read it here.
ENV CLIP_STORE_DIR=/var/lib/clip/store CLIP_CACHE_DIR=/var/lib/clip/cache CLIP_PORT=8000
USER app
EXPOSE ${CLIP_PORT}
HEALTHCHECK --interval=10s --timeout=3s --start-period=600s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/ready' % os.environ['CLIP_PORT'], timeout=2)"]
CMD ["python", "-m", "model_api", "--host", "0.0.0.0"]

FROM base AS ui
# The UI needs no torch: only what streamlit_ui imports.
RUN python scripts/pins.py ui > /tmp/requirements.txt && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY streamlit_ui ./streamlit_ui
COPY .streamlit ./.streamlit
# Streamlit reads these itself; the upload limit comes from CLIP_MAX_UPLOAD_BYTES (python -m streamlit_ui).
ENV STREAMLIT_SERVER_ADDRESS=0.0.0.0 STREAMLIT_SERVER_PORT=8501
USER app
EXPOSE ${STREAMLIT_SERVER_PORT}
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/_stcore/health' % os.environ['STREAMLIT_SERVER_PORT'], timeout=2)"]
CMD ["python", "-m", "streamlit_ui"]
