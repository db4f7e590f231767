# The entry point for people and CI alike. Everything installs into .venv; nothing by hand.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
BG     := $(VENV)/bin/batchgen
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test test-fast lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Run the demo batch against the embedded emulator (no account needed): its own state
## (jobs/state/demo.emulator.db) and videos (jobs/out/demo.emulator), apart from a real run's.
demo: install
	$(BG) run jobs/demo.yaml --emulator

## Run the test suite. pytest exits 5 when it collects nothing, which fails this target.
test: install
	$(PY) -m pytest

## The edit-test loop: everything but the tests marked slow (crash, signal and long runs).
test-fast: install
	$(PY) -m pytest -m "not slow"

lint: install
	$(VENV)/bin/ruff check batchgen tests bench
	$(VENV)/bin/ruff format --check batchgen tests bench
	$(VENV)/bin/mypy

## Benchmarks (speed and memory targets live here, never in timed tests).
bench: install
	$(PY) -m bench

clean:
	rm -rf $(VENV) state/*.db state/*.json out jobs/out jobs/state
