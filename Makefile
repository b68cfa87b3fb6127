# `make run` and `make test` bootstrap .venv themselves; only Python 3.11 is needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint type unit e2e bench chaos clean help

help:
	@echo "make run    - the whole stack on embedded PostgreSQL and Redis (or PAYMENTS_DATABASE_URL / PAYMENTS_REDIS_URL)"
	@echo "make test   - lint, types and the whole test suite"
	@echo "make bench  - load benchmarks (see docs/benchmarks.md)"
	@echo "make chaos  - the fault-injection suite, RUNS=N times in a row (see docs/reliability.md)"

# The development install: editable, with the test tools (dev) and the embedded PostgreSQL and Redis (embedded)
# that `make run` and the test suite use when no server URL is set. A production install is `pip install .`.
# pip's own output shows (no --quiet on the install): the first run downloads for about a minute, and a silent
# minute looks hung.
$(STAMP): setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	@if [ -x $(BIN)/python ]; then echo "updating $(VENV): setup.cfg or pyproject.toml changed"; \
	 else echo "installing dependencies into $(VENV) (first run, about a minute)..."; fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --disable-pip-version-check -e '.[dev,embedded]'
	@touch $(STAMP)

run: $(STAMP)
	exec $(BIN)/payments dev

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

type: $(STAMP)
	$(BIN)/mypy

test: lint type
	$(BIN)/pytest -q

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit tests/contract

bench: $(STAMP)
	$(BIN)/python bench/run.py

# Every fault-injection scenario in full (its own PostgreSQL and Redis), RUNS times in a row, stopping at the first
# failure, then the results table; `make test` runs a short version.
RUNS ?= 1
chaos: $(STAMP)
	$(BIN)/python -m tests.chaos.run --runs $(RUNS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
