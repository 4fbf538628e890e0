# Set-up and checks for a fresh checkout. Every target creates the virtual
# environment in .venv first, if it is missing or older than pyproject.toml.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OLDEST := .venv-oldest

.PHONY: demo test test-oldest lint docs wheel bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

## Record a few tasks in examples/instance/tasks.sqlite and list them.
demo: $(BIN)/.installed
	$(BIN)/flask --app examples/app.py demo
	$(BIN)/flask --app examples/app.py tasks list

## Run the test suite.
test: $(BIN)/.installed
	$(BIN)/pytest

## Run the test suite on the oldest releases of the dependencies that
## pyproject.toml allows, in a virtual environment of its own.
test-oldest: $(OLDEST)/bin/.installed
	$(OLDEST)/bin/pytest

$(OLDEST)/bin/.installed: pyproject.toml tests/oldest-requirements.txt
	$(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install --quiet --upgrade pip
	$(OLDEST)/bin/python -m pip install --quiet -r tests/oldest-requirements.txt -e '.[tests]'
	touch $@

## Check formatting, lint and types.
lint: $(BIN)/.installed
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

## Build the documentation, failing on any warning.
docs: $(BIN)/.installed
	$(BIN)/sphinx-build --fail-on-warning --keep-going --quiet -b html docs docs/_build/html

## Run the benchmarks (benchmarks/run.py) on SQLite; BENCH_ARGS passes options,
## for example BENCH_ARGS=--quick or BENCH_ARGS='--uri postgresql+psycopg://...'.
bench: $(BIN)/.installed
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

## Build the sdist and the wheel into dist/.
wheel: $(BIN)/.installed
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir dist .

clean:
	rm -rf $(VENV) $(OLDEST) dist docs/_build examples/instance
