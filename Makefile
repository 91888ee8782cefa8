# Two commands matter: `make run` (the connector with its sandbox) and `make test`.
# Both set up what they need on a fresh machine and are quick when it is already there.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python

.PHONY: run test bench lint setup clean docs

setup: $(VENV)/.installed node_modules/.installed local.settings.json

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Created from the sample on first use; later runs only add settings the sample gained.
local.settings.json: local.settings.sample.json $(VENV)/.installed
	$(PY) -m dev.settings

run: setup
	$(PY) -m dev.run

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	$(PY) -m bench

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

docs: setup
	$(PY) -m dev.docs

clean:
	rm -rf $(VENV) node_modules .azurite .local .pytest_cache
