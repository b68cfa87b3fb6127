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
# uv (https://docs.astral.sh/uv/) builds it when it is installed, on PATH or as `python -m uv`: a few seconds
# once its cache is warm. Otherwise pip does, in about a minute (its own output shows: a silent minute looks hung),
# upgraded first: the upgrade costs ~3 s and the newer pip installs with ~10 s less CPU (docs/benchmarks.md).
# `make UV= run` forces pip; `make UV=/path/to/uv run` picks a uv. docs/benchmarks.md has the numbers.
UV ?= $(shell command -v uv 2>/dev/null || { $(PYTHON) -m uv --version >/dev/null 2>&1 && echo "$(PYTHON) -m uv"; })

$(STAMP): setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	@uv='$(UV)'; \
	 if [ -x $(BIN)/python ]; then echo "updating $(VENV): setup.cfg or pyproject.toml changed"; \
	 elif [ -n "$$uv" ]; then echo "installing dependencies into $(VENV) with uv (first run, seconds)..."; \
	 else echo "installing dependencies into $(VENV) with pip (first run, about a minute; uv makes it seconds)..."; fi; \
	 if [ -n "$$uv" ]; then \
	     set -x; $$uv venv --seed --allow-existing --python $(PYTHON) $(VENV) \
	     && $$uv pip install --python $(BIN)/python -e '.[dev,embedded]'; \
	 else \
	     set -x; $(PYTHON) -m venv $(VENV) \
	     && $(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip \
	     && $(BIN)/python -m pip install --disable-pip-version-check -e '.[dev,embedded]'; \
	 fi
	@touch $(STAMP)

run: $(STAMP)
	exec $(BIN)/payments dev

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

type: $(STAMP)
	$(BIN)/mypy

test: lint type
	$(BIN)/pytest -q --durations=30

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
