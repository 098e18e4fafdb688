# Two entry points for a fresh machine: `make run` (the main job) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The clocks the date guard runs the unit and end-to-end tiers under (see docs/testing.md): about
# 400 days from today, and the last second of a month (the clock ticks on into the next one).
SHIFTED_CLOCK := +400d
MONTH_END_CLOCK := @2027-02-28 23:59:59
CLOCK_TIERS := tests/unit tests/e2e

# The locks (ADR 20, docs/image.md): every dependency pinned with its hashes; the dev lock for .venv,
# the runtime lock for the image. uv installs them, itself bootstrapped with pip at the lock's version.
RUNTIME_LOCK := requirements/runtime.lock
DEV_LOCK := requirements/dev.lock
UV_VERSION := $(shell sed -n 's/^uv==\([^ ]*\).*/\1/p' $(DEV_LOCK))
# uv does not read pip's configuration: hand it this machine's pip index and links (never written here).
pip_setting = $(shell $(PYTHON) -m pip config list 2>/dev/null | sed -n "s/^[^=]*\.$(1)='\(.*\)'$$/\1/p" | tail -n 1)
uv_env = $(strip $(if $(call pip_setting,index-url),UV_INDEX_URL='$(call pip_setting,index-url)') \
	$(if $(call pip_setting,extra-index-url),UV_EXTRA_INDEX_URL='$(call pip_setting,extra-index-url)') \
	$(if $(call pip_setting,find-links),UV_FIND_LINKS='$(call pip_setting,find-links)'))
UV_COMPILE := pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes --quiet $(UPGRADE)

.PHONY: setup packages prepare tools image lock lint test test-clock test-clock-shifted test-clock-month-end run

setup: $(VENV)/.installed

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q 'uv==$(UV_VERSION)'

$(VENV)/.installed: pyproject.toml $(DEV_LOCK) | $(BIN)/uv
	@echo 'uv pip install --require-hashes -r $(DEV_LOCK), then the project (editable, no dependencies)'
	@$(uv_env) $(BIN)/uv pip install -q --python $(BIN)/python --require-hashes -r $(DEV_LOCK)
	@$(uv_env) $(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	touch $@

# Re-resolves the locks from pyproject.toml, keeping every pin that still fits; `make lock UPGRADE=--upgrade`
# moves them all to the newest versions the ranges allow. The dev lock is resolved within the runtime one.
lock: | $(BIN)/uv
	@$(uv_env) $(BIN)/uv $(UV_COMPILE) -o $(RUNTIME_LOCK)
	@$(uv_env) $(BIN)/uv $(UV_COMPILE) --extra dev -c $(RUNTIME_LOCK) -o $(DEV_LOCK)
	@echo 'Locked $(RUNTIME_LOCK) and $(DEV_LOCK); commit them with pyproject.toml.'

# Debian packages the tests need: faketime for the date guard, redis-server for the routers' shared store,
# debootstrap, umoci, bubblewrap and binutils (strip) for the daemonless image build and to run its root,
# postgresql for the archive's tests (the fixtures run its initdb and pg_ctl from /usr/lib/postgresql/*/bin),
# gcc for the one tool built with cgo (ORY Hydra, the dev OIDC provider: SQLite in memory), g++ and cmake to
# compile llama.cpp for the llama.cpp server the live tests call (tools/llamacpp).
packages:
	@command -v faketime >/dev/null || { apt-get update -qq && apt-get install -y -qq faketime >/dev/null; }
	@command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
	@command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
	@command -v umoci >/dev/null || { apt-get update -qq && apt-get install -y -qq umoci >/dev/null; }
	@command -v bwrap >/dev/null || { apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null; }
	@command -v strip >/dev/null || { apt-get update -qq && apt-get install -y -qq binutils >/dev/null; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; }
	@command -v gcc >/dev/null || { apt-get update -qq && apt-get install -y -qq gcc libc6-dev >/dev/null; }
	@command -v g++ >/dev/null || { apt-get update -qq && apt-get install -y -qq g++ >/dev/null; }
	@command -v cmake >/dev/null || { apt-get update -qq && apt-get install -y -qq cmake >/dev/null; }
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

# Builds (once, cached under ~/.cache/jesus/image) the platform image without a daemon (docs/image.md).
image: setup packages
	$(BIN)/jesus dev image

# Builds (once, cached under ~/.cache/jesus) the control plane and tool binaries from tools/*/go.mod,
# and the llama.cpp server the live tests call (tools/llamacpp, compiled from source once).
tools: setup packages
	$(uv_env) $(BIN)/jesus dev build --llamacpp

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/bandit -q -r operator adapters -c pyproject.toml

# Everything the suite needs, two at a time: on a cold cache the image's downloads overlap the tools'
# compiles, and the linters run beside them.
prepare: setup packages
	$(MAKE) --no-print-directory -j2 --output-sync=target tools image lint

# The suite once with coverage (the unit tier first, reported alone, then the rest added), then the date guard.
test: prepare
	rm -rf .coverage-data
	$(BIN)/pytest tests/unit --cov --cov-report=
	$(BIN)/coverage report --format=total > .coverage-data/unit-total
	$(BIN)/pytest tests/e2e tests/cluster --cov --cov-append --cov-report= --durations=25
	$(BIN)/python -m tests.coverage_summary .coverage-data/unit-total
	$(MAKE) --no-print-directory -j2 --output-sync=target test-clock

# The date guard: no test may depend on today's date, so the tiers that need no cluster pass with the
# whole process tree's clock moved (faketime; the two runs side by side, one per core).
test-clock: test-clock-shifted test-clock-month-end

test-clock-shifted: setup packages
	faketime -f '$(SHIFTED_CLOCK)' $(BIN)/pytest -q -p no:cacheprovider $(CLOCK_TIERS)

test-clock-month-end: setup packages
	faketime -f '$(MONTH_END_CLOCK)' $(BIN)/pytest -q -p no:cacheprovider $(CLOCK_TIERS)

run: setup
	$(BIN)/jesus run examples/hello.yaml
