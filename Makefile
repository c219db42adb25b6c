# Two commands work on a fresh machine: `make quickstart` (the whole pipeline on the bundled
# MNIST subset) and `make test`.
# Both create .venv and install the project into it on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Optional extras on top of dev, e.g. `make test EXTRAS=dev,openvino,executorch,models` (CI does).
EXTRAS ?= dev

.PHONY: venv test lint docs wheel-smoke train quickstart clean

venv: $(VENV)/.installed

# torch==2.13.0 first: it is the CPU build that installs from local disk; a looser pin
# would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

lint: venv
	$(BIN)/ruff check .

# The documentation site, strictly (a warning fails it), into site/; tests/test_docs.py builds it too.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# Build the wheel, install it in a fresh venv away from the source tree, run the default job
# for one epoch there (CI does; about 3 minutes).
wheel-smoke:
	.ci/wheel_smoke

test: venv
	$(BIN)/python -m pytest -q

# The default experiment, the quickstart's training alone: the small-image supernet on the
# bundled MNIST subset, uniform sampling plus the smallest subnet, 24 epochs (about 5 minutes).
train: venv
	$(BIN)/elasticnas train mnist_quickstart --out runs/mnist_quickstart $(if $(wildcard runs/mnist_quickstart/checkpoint.pt),--resume,)

# Train, profile, measure, fit, search under three budgets, export: about 10 minutes on 2 cores; resumes.
quickstart: venv
	$(BIN)/elasticnas quickstart --out runs/quickstart

clean:
	rm -rf $(VENV) build site *.egg-info
