# llmstream: two commands for a fresh machine (see README "Quick start"):
#   make run    set up what is missing, serve http://127.0.0.1:8000
#   make test   set up what the tests need, run everything
# Everything below installs into .venv; a target re-installs only when pyproject.toml changed.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 8000
ORACLE := tests/oracle

.DEFAULT_GOAL := help
.PHONY: help run test lint format types unit integration e2e screenshots bench-codec clean

help:
	@echo "make run          serve the app on http://$(HOST):$(PORT)"
	@echo "make test         lint, types, unit, integration, browser (installs what is missing)"
	@echo "make bench-codec  SSE codec micro-benchmark (prints events/s)"
	@echo "make format       apply ruff's formatting and safe fixes"

$(PY):
	$(PYTHON) -c 'import sys; sys.exit("llmstream needs Python >= 3.11") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Stamps record what was installed; they are older than pyproject.toml after it changes.
$(VENV)/.run-deps: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.test-deps: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test,uvloop,granian,e2e]'
	touch $@

# The independent SSE oracle (eventsource-parser, pinned by the lockfile) runs under node.
$(ORACLE)/node_modules/.package-lock.json: $(ORACLE)/package.json $(ORACLE)/package-lock.json
	@command -v node >/dev/null || $(MAKE) --no-print-directory node
	npm ci --prefix $(ORACLE) --no-audit --no-fund --loglevel=error

.PHONY: node
node:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && apt-get install -y -qq nodejs npm; \
	else \
		echo "node is missing: install Node.js >= 18 (e.g. 'sudo apt-get install nodejs npm')"; exit 1; \
	fi

# Browser tests drive Debian's chromium: browser downloads (playwright install) cannot work here.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && apt-get install -y -qq chromium; \
	else \
		echo "chromium is missing: install Debian's package (sudo apt-get install chromium)"; exit 1; \
	fi

run: $(VENV)/.run-deps
	$(PY) -m llmstream serve --host $(HOST) --port $(PORT)

test: lint types unit integration e2e

lint: $(VENV)/.test-deps
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(VENV)/.test-deps
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

types: $(VENV)/.test-deps
	$(PY) -m mypy

# The codec must stay fully covered, branches included.
unit: $(VENV)/.test-deps $(ORACLE)/node_modules/.package-lock.json
	$(PY) -m pytest tests/unit --cov=llmstream --cov-branch --cov-report=
	$(PY) -m coverage report --include='llmstream/sse.py' --fail-under=100

integration: $(VENV)/.test-deps
	$(PY) -m pytest tests/integration

# Playwright's sync API and pytest-asyncio clash in one process: the browser tests are their own run.
e2e: $(VENV)/.test-deps $(CHROMIUM)
	$(PY) -m pytest -c tests/e2e/pytest.ini tests/e2e

# README's screenshots (docs/images/) come from the browser tests, refreshed only on request.
screenshots: $(VENV)/.test-deps $(CHROMIUM)
	LLMSTREAM_UPDATE_SCREENSHOTS=1 $(PY) -m pytest -c tests/e2e/pytest.ini tests/e2e

bench-codec: $(VENV)/.test-deps
	$(PY) loadtests/bench_codec.py

clean:
	rm -rf $(VENV) $(ORACLE)/node_modules dist build .coverage .pytest_cache .mypy_cache .ruff_cache .hypothesis
