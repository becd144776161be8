# syntax=docker/dockerfile:1
# Two images from one file: `--target api` (the model service) and `--target ui` (Streamlit).
# Pins: the base image tag here; Python packages exactly as pyproject.toml pins them.
FROM python:3.11.14-slim-bookworm AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# The code runs from /app uninstalled; `streamlit run` would otherwise see only the script's folder.
ENV PYTHONPATH=/app
RUN useradd --create-home --uid 10001 app
WORKDIR /app
COPY pyproject.toml ./
COPY scripts/pins.py ./scripts/

FROM base AS api
RUN pip install $(python scripts/pins.py)
COPY model_api ./model_api
RUN mkdir -p /var/lib/clip && chown app:app /var/lib/clip
# The named volume mounts here; it starts out owned by `app` because this directory is.
ENV CLIP_STORE_DIR=/var/lib/clip/store CLIP_CACHE_DIR=/var/lib/clip/cache
USER app
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=600s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=2)"]
CMD ["python", "-m", "model_api", "--host", "0.0.0.0", "--port", "8000"]

FROM base AS ui
# The UI needs no torch: only what streamlit_ui imports.
RUN pip install $(python scripts/pins.py streamlit httpx pillow)
COPY streamlit_ui ./streamlit_ui
COPY .streamlit ./.streamlit
USER app
EXPOSE 8501
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=2)"]
CMD ["python", "-m", "streamlit", "run", "streamlit_ui/app.py", "--server.address", "0.0.0.0", "--server.port", "8501"]
