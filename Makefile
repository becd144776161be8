# The two commands a user needs: `make run` (whole app on http://127.0.0.1:8080) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test lint run

# The library (core), the service (api), the UI (ui) and the test tools: pyproject.toml's groups.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[api,ui,test]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

# Debian's nginx, installed only when missing (the machine runs as root; apt needs no sudo).
NGINX := $(shell command -v nginx || ls /usr/sbin/nginx 2>/dev/null)

# API, UI and Nginx as local processes; http://127.0.0.1:8080; Ctrl-C stops all three.
# Settings (CLIP_PORT, CIFAR10_DATA, CLIP_API_KEY, ...) pass through the environment: docs/RUNNING.md.
run: $(STAMP)
	@test -n "$(NGINX)" || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx)
	$(PY) scripts/run_local.py
