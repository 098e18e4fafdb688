# Two entry points for a fresh machine: `make run` (the main job) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The clocks the date guard runs the unit and end-to-end tiers under (see docs/testing.md): about
# 400 days from today, and the last second of a month (the clock ticks on into the next one).
SHIFTED_CLOCK := +400d
MONTH_END_CLOCK := @2027-02-28 23:59:59
CLOCK_TIERS := tests/unit tests/e2e

.PHONY: setup packages tools lint test test-clock test-clock-shifted test-clock-month-end run

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# Debian packages the tests need: faketime for the date guard, redis-server for the routers' shared store.
packages:
	@command -v faketime >/dev/null || { apt-get update -qq && apt-get install -y -qq faketime >/dev/null; }
	@command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }

# Builds (once, cached under ~/.cache/jesus) the control plane and tool binaries from tools/*/go.mod.
tools: setup
	$(BIN)/jesus dev build

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# The suite once with coverage (the unit tier first, reported alone, then the rest added), then the date guard.
test: tools lint packages
	rm -rf .coverage-data
	$(BIN)/pytest tests/unit --cov --cov-report=
	$(BIN)/coverage report --format=total > .coverage-data/unit-total
	$(BIN)/pytest tests/e2e tests/cluster --cov --cov-append --cov-report=
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
