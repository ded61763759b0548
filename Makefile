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
.PHONY: help run test lint format types unit integration e2e loadtest-smoke notebooks loadtest \
	screenshots bench bench-codec soak clean

help:
	@echo "make run          serve the app on http://$(HOST):$(PORT)"
	@echo "make test         lint, types, unit, integration, browser, load smoke, notebooks"
	@echo "make loadtest     a Locust load test into results/<run>/ (USERS= DURATION= API= ... see README)"
	@echo "make bench        llmstream against common SSE stacks, figures and ratios (QUICK=1: a smoke)"
	@echo "make soak         memory soak: RSS over a churn of streams, fails on growth (DURATION= ...)"
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
	$(PY) -m pip install --quiet -e '.[test,uvloop,granian,e2e,loadtest,notebooks,bench]'
	touch $@

$(VENV)/.loadtest-deps: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[loadtest]'
	touch $@

$(VENV)/.bench-deps: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[bench]'
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

test: lint types unit integration e2e loadtest-smoke notebooks

lint: $(VENV)/.test-deps
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(VENV)/.test-deps
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

# The load-test client too; its locustfile is left out (Locust's event decorators are untyped).
types: $(VENV)/.test-deps
	$(PY) -m mypy
	$(PY) -m mypy --strict loadtests/streamload loadtests/run.py loadtests/soak.py loadtests/bench.py \
		loadtests/benchstacks

# The codec must stay fully covered, branches included.
unit: $(VENV)/.test-deps $(ORACLE)/node_modules/.package-lock.json
	$(PY) -m pytest tests/unit --cov=llmstream --cov-branch --cov-report=
	$(PY) -m coverage report --include='llmstream/sse.py' --fail-under=100

integration: $(VENV)/.test-deps
	$(PY) -m pytest tests/integration

# Playwright's sync API and pytest-asyncio clash in one process: the browser tests are their own run.
e2e: $(VENV)/.test-deps $(CHROMIUM)
	$(PY) -m pytest -c tests/e2e/pytest.ini tests/e2e

# Real Locust processes against a real server: CI's load test (300+ streams, master + 2 workers) and
# short runs of --processes, shapes, the open loop and the validity verdict. Leaves results/ci-*/.
loadtest-smoke: $(VENV)/.test-deps
	$(PY) -m pytest tests/loadtest

# The notebooks, executed on the smoke runs' results (run loadtest-smoke first).
NOTEBOOK_RESULTS ?= results/ci-smoke
NOTEBOOK_RESULTS_B ?= results/ci-processes
notebooks: $(VENV)/.test-deps
	LLMSTREAM_TEST_RESULTS=$(NOTEBOOK_RESULTS) LLMSTREAM_TEST_RESULTS_B=$(NOTEBOOK_RESULTS_B) \
		$(PY) -m pytest tests/notebooks

# make loadtest USERS=200 DURATION=60 API=openai SHAPE=ramp ...: one run into results/<run>/; every
# variable is optional (README "Load testing" lists them; `python loadtests/run.py --help` has all).
LOADTEST_ARGS = $(if $(USERS),--users $(USERS)) $(if $(SPAWN_RATE),--spawn-rate $(SPAWN_RATE)) \
	$(if $(DURATION),--duration $(DURATION)) $(if $(API),--api $(API)) $(if $(MIX),--mix $(MIX)) \
	$(if $(SHAPE),--shape $(SHAPE)) $(if $(RATE),--rate $(RATE)) $(if $(MODEL),--model $(MODEL)) \
	$(if $(MAX_TOKENS),--max-tokens $(MAX_TOKENS)) $(if $(TOKENS_PER_S),--tokens-per-s $(TOKENS_PER_S)) \
	$(if $(PROCESSES),--processes $(PROCESSES)) $(if $(WORKERS),--workers $(WORKERS)) \
	$(if $(TARGET),--target $(TARGET)) $(if $(RUN),--run $(RUN)) $(if $(SERVER_ARGS),--server-args '$(SERVER_ARGS)')
loadtest: $(VENV)/.loadtest-deps
	$(PY) loadtests/run.py $(LOADTEST_ARGS) $(ARGS)

# README's screenshots (docs/images/) come from the browser tests, refreshed only on request.
screenshots: $(VENV)/.test-deps $(CHROMIUM)
	LLMSTREAM_UPDATE_SCREENSHOTS=1 $(PY) -m pytest -c tests/e2e/pytest.ini tests/e2e

# make bench [ROUNDS=3] [ONLY=unpaced,paced,...] [STACKS=...] [QUICK=1]: about 30 minutes; prints each
# figure with the ratio llmstream / stack and writes results/bench/<time>.json (docs/performance.md).
# ARGS passes more options, e.g. ARGS="--overload-streams 4000 --llmstream-args '--max-lateness 0.05'".
BENCH_ARGS = $(if $(QUICK),--quick) $(if $(ROUNDS),--rounds $(ROUNDS)) $(if $(ONLY),--only $(ONLY)) \
	$(if $(STACKS),--stacks $(STACKS))
bench: $(VENV)/.bench-deps
	$(PY) loadtests/bench.py $(BENCH_ARGS) $(ARGS)

# make soak DURATION=600 CONCURRENCY=200 ...: the server's resident memory over a churn of streams that
# finish, hang up and resume, bounded in time; exit 1 on growth beyond MAX_GROWTH_PCT after the warm-up
# or on any stream that failed (README "Soak").
SOAK_ARGS = $(if $(DURATION),--duration $(DURATION)) $(if $(WARMUP),--warmup $(WARMUP)) \
	$(if $(INTERVAL),--interval $(INTERVAL)) $(if $(CONCURRENCY),--concurrency $(CONCURRENCY)) \
	$(if $(MAX_GROWTH_PCT),--max-growth-pct $(MAX_GROWTH_PCT)) \
	$(if $(TOKENS_PER_S),--tokens-per-s $(TOKENS_PER_S)) $(if $(CSV),--results $(CSV)) \
	$(if $(SERVER_ARGS),--server-args '$(SERVER_ARGS)')
soak: $(VENV)/.loadtest-deps
	$(PY) loadtests/soak.py $(SOAK_ARGS) $(ARGS)

bench-codec: $(VENV)/.test-deps
	$(PY) loadtests/bench_codec.py

clean:
	rm -rf $(VENV) $(ORACLE)/node_modules dist build .coverage .pytest_cache .mypy_cache .ruff_cache .hypothesis
