# Every target bootstraps .venv itself: a fresh clone needs only python3 (and npm for the mock server).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_FLAGS ?=

.PHONY: install test lint typecheck bench compat fuzz clean

install: $(STAMP)

$(STAMP): pyproject.toml $(wildcard package-lock.json)
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,pydantic,hardware]'
	@# The backend mock server (prism) for the API client tests, into ./node_modules.
	@if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; fi
	touch $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

test: install lint typecheck
	$(BIN)/pytest $(PYTEST_FLAGS)

bench: install
	$(BIN)/python -m benchmarks.report --quick

# Regenerate the Pydantic views in compat/oasst_compat from the structs.
compat: install
	$(BIN)/python -m oasst_compat._generate

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .benchmarks
