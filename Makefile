# The entry point for people and CI alike. Everything installs into .venv; nothing by hand.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
BG     := $(VENV)/bin/batchgen
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test test-fast lint bench bench-quick clean browser

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

## Debian's Chromium, for the gallery's browser test (tests/e2e/test_gallery_browser.py, skipped
## without it). Nothing to do when a chromium is on PATH; never fails the build: without apt-get,
## root or the network it says why and the test skips. .ci/run calls it before `make test`.
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v tmux >/dev/null 2>&1; then \
		echo "browser: $$(command -v chromium) and $$(command -v tmux) already installed"; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
		echo "browser: no apt-get here; install chromium and tmux by hand or their tests skip"; \
	elif [ "$$(id -u)" != 0 ]; then \
		echo "browser: apt-get needs root; run 'sudo make browser' or the tests skip"; \
	elif DEBIAN_FRONTEND=noninteractive apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			chromium tmux >/dev/null; then \
		echo "browser: installed $$(chromium --version 2>/dev/null) and $$(tmux -V)"; \
	else \
		echo "browser: apt-get could not install chromium/tmux (above); their tests skip"; \
	fi

lint: install
	$(VENV)/bin/ruff check batchgen tests bench
	$(VENV)/bin/ruff format --check batchgen tests bench
	$(VENV)/bin/mypy

## Benchmarks (speed and memory targets live here, never in timed tests): every bench/bench_*.py,
## each repeated, beside the peer; writes bench/results.json and bench/results.md (untracked).
## `make bench BENCH_ARGS=--record` also rewrites the table in docs/benchmarks.md; BENCH_ARGS=peer
## runs one module. About 10 minutes in all on a quiet 2-core machine.
BENCH_ARGS ?=
bench: install
	$(PY) -m bench $(BENCH_ARGS)

## The quick subset (each IN_QUICK module once, under 2 minutes): the regression guard CI prints.
bench-quick: install
	$(PY) -m bench --quick

clean:
	rm -rf $(VENV) state/*.db state/*.json out jobs/out jobs/state
