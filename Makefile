# Two entry points for a fresh machine: `make run` (the main job) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup tools lint test run

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# Builds (once, cached under ~/.cache/jesus) the control plane and tool binaries from tools/*/go.mod.
tools: setup
	$(BIN)/jesus dev build

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: tools lint
	$(BIN)/pytest

run: setup
	$(BIN)/jesus run examples/hello.yaml
