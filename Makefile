# Two commands work on a fresh machine: `make quickstart` and `make test`.
# Both create .venv and install the project into it on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: venv test lint quickstart clean

venv: $(VENV)/.installed

# torch==2.13.0 first: it is the CPU build that installs from local disk; a looser pin
# would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

lint: venv
	$(BIN)/ruff check .

test: venv
	$(BIN)/python -m pytest -q

quickstart: venv
	$(BIN)/elasticnas quickstart --out runs/quickstart

clean:
	rm -rf $(VENV) build *.egg-info
