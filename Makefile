# DealBridge: `make demo` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
NPM_DIR := tests

.PHONY: demo test lint typecheck pytest bench cards sandbox clean install dev npm chaos fuzz

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

$(NPM_DIR)/node_modules/.installed: $(NPM_DIR)/package.json $(NPM_DIR)/package-lock.json
	cd $(NPM_DIR) && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $@

install: $(VENV)/.installed
dev: $(VENV)/.installed-dev
npm: $(NPM_DIR)/node_modules/.installed

# make demo PORT=5100 SANDBOX_PORT=5101 when 5000/5001 are taken (the demo checks both first).
PORT ?= 5000
SANDBOX_PORT ?= 5001

demo: install
	$(BIN)/dealbridge demo --port $(PORT) --sandbox-port $(SANDBOX_PORT)

sandbox: install
	$(BIN)/dealbridge sandbox --port 5001

lint: dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: dev
	$(BIN)/mypy

# Twice: on SQLite, then every test that touches the store again on a throwaway PostgreSQL
# cluster (skipped, with one line saying how to get it, where the server is not installed).
pytest: dev npm
	$(BIN)/pytest -q --database=sqlite
	$(BIN)/pytest -q --database=postgresql

test: lint typecheck pytest

# The chaos run (tests/e2e/test_chaos.py): the service killed mid-delivery under lost answers.
chaos: dev
	DEALBRIDGE_CHAOS=1 $(BIN)/pytest -q -s tests/e2e/test_chaos.py

# The fuzzing (tests/fuzz/run.py): schemathesis against `dealbridge serve` with a write key, seeded
# and bounded, on SQLite and on a throwaway PostgreSQL cluster. schemathesis lives in its own
# virtual environment: it registers a pytest plugin and caps pytest and hypothesis (<10, <7).
FUZZ_VENV := .venv-fuzz
FUZZ_ARGS ?=

$(FUZZ_VENV)/.installed: tests/fuzz/requirements.txt
	$(PYTHON) -m venv $(FUZZ_VENV)
	$(FUZZ_VENV)/bin/python -m pip install -q -r tests/fuzz/requirements.txt
	touch $@

fuzz: dev $(FUZZ_VENV)/.installed
	$(BIN)/python -m tests.fuzz.run $(FUZZ_ARGS)

bench: dev
	$(BIN)/python -m bench

cards: dev npm
	$(BIN)/python -m cards.render --out cards-out

clean:
	rm -rf $(VENV) $(FUZZ_VENV) $(NPM_DIR)/node_modules instance .mypy_cache .ruff_cache .pytest_cache
