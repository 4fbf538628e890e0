# Set-up and checks for a fresh checkout. Every target creates the virtual
# environment in .venv first, if it is missing or older than pyproject.toml.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint docs wheel clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

## Record a few tasks in examples/instance/tasks.sqlite and list them.
demo: $(BIN)/.installed
	$(BIN)/flask --app examples/app.py demo

## Run the test suite.
test: $(BIN)/.installed
	$(BIN)/pytest

## Check formatting, lint and types.
lint: $(BIN)/.installed
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

## Build the documentation, failing on any warning.
docs: $(BIN)/.installed
	$(BIN)/sphinx-build --fail-on-warning --keep-going --quiet -b html docs docs/_build/html

## Build the sdist and the wheel into dist/.
wheel: $(BIN)/.installed
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir dist .

clean:
	rm -rf $(VENV) dist docs/_build examples/instance
