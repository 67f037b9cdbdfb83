# The two commands of the README: `make demo` and `make test`.
# Each creates .venv on first use with nothing but python3's own venv and pip.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "xiezhu needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/xiezhu demo

# The suite in PYTEST_WORKERS processes (pytest-xdist): most tests wait on nats-servers, agents and
# subprocesses, so even on two cores three workers overlap.  The session's demo is made once for all of
# them (tests/conftest.py); a module's fixtures, once in each worker that runs one of its tests.
PYTEST_WORKERS ?= 3

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS)

bench: $(STAMP)
	$(BIN)/python -m bench.exchange --json

clean:
	rm -rf $(VENV) build *.egg-info
