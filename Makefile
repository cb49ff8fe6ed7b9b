# Every target bootstraps .venv itself: a fresh clone needs only python3 (and npm for the mock server).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_FLAGS ?=

.PHONY: install test lint typecheck bench compat generate fuzz clean

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

# Regenerate every generated module: the blocking API client facade and the Pydantic views.
generate: install
	$(BIN)/python -m oasst_shared.api_client._generate_sync
	$(BIN)/python -m oasst_compat._generate

# Regenerate the Pydantic views in compat/oasst_compat from the structs.
compat: install
	$(BIN)/python -m oasst_compat._generate

FUZZ_SECONDS ?= 10
FUZZ_HARNESSES := worker_response worker_request peek decode_lines sse msgpack_frames

# Coverage-guided fuzzing of the codec entry points (see fuzz/__init__.py), bounded: each harness
# runs FUZZ_SECONDS (60 s in all by default). A crash stops the target and its input is saved in
# .fuzz/ (replay: python -m fuzz.fuzz_NAME FILE); make it a regression test in tests/.
fuzz: install
	@$(BIN)/python -c "import atheris" 2>/dev/null || $(BIN)/python -m pip install -q atheris
	@mkdir -p .fuzz
	@for h in $(FUZZ_HARNESSES); do \
		$(BIN)/python -m fuzz.fuzz_$$h -max_total_time=$(FUZZ_SECONDS) -timeout=30 -rss_limit_mb=4096 \
			-artifact_prefix=.fuzz/ > .fuzz/$$h.log 2>&1 || { tail -n 40 .fuzz/$$h.log; exit 1; }; \
		echo "fuzz_$$h: $$(grep -h '^Done' .fuzz/$$h.log)"; \
	done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .benchmarks .fuzz node_modules
