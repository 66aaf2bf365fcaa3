# DealBridge: `make demo` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
NPM_DIR := tests

.PHONY: demo test lint typecheck pytest bench cards sandbox clean install dev npm chaos

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

bench: dev
	$(BIN)/python -m bench

cards: dev npm
	$(BIN)/python -m cards.render --out cards-out

clean:
	rm -rf $(VENV) $(NPM_DIR)/node_modules instance .mypy_cache .ruff_cache .pytest_cache
