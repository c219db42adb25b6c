# Two commands work on a fresh machine: `make quickstart` (the whole pipeline on the bundled
# MNIST subset) and `make test`.
# Both create .venv and install the project into it on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Optional extras on top of dev, e.g. `make test EXTRAS=dev,openvino,executorch,models` (CI does).
EXTRAS ?= dev

.PHONY: venv test test-slow test-all lint docs wheel-smoke train quickstart bench bench-quick clean

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

# Two tiers. `make test`: every behaviour that a unit check can hold (conformance of every family,
# counts, extraction, tables, predictors, search, export, refusals, the docs), minutes.
# `make test-slow`: what trains or runs the pipeline end to end (each sampling strategy, resume
# bit-identity, quickstart on every small preset, distributed training, the shared study, every
# benchmark script's --quick). CI runs both; `make test-all` is both in one run.
test: venv
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

# PYTEST_ARGS: more pytest options, e.g. `make test-slow PYTEST_ARGS="-n 2 --dist loadfile"` (CI's
# two workers, pytest-xdist from the dev extras).
test-slow: venv
	$(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS)

test-all: venv
	$(BIN)/python -m pytest -q

# The default experiment, the quickstart's training alone: the small-image supernet on the
# bundled MNIST subset, uniform sampling plus the smallest subnet, 20 epochs (about 3 minutes).
train: venv
	$(BIN)/elasticnas train mnist_quickstart --out runs/mnist_quickstart $(if $(wildcard runs/mnist_quickstart/checkpoint.pt),--resume,)

# Train, profile, measure, fit, search under three budgets, export: about 5.5 minutes on 2 cores; resumes.
quickstart: venv
	$(BIN)/elasticnas quickstart --out runs/quickstart

# The benchmarks whose figures docs/benchmarks.md quotes, each at the size the docs quote, into
# experiments/results/ (every CSV headed by its commit, CPU, cores, torch and date). Many hours on
# 2 cores: experiments/README.md gives each one's time. bench_search needs ../shared/refdata and
# says so where it is absent; bench_export_choice studies the quickstart's run, made first.
BENCH_SET := \
	"bench_own_model.py --model resnet" "bench_own_model.py --model vit" \
	"bench_supernet_overhead.py" "bench_sampling_strategies.py" \
	"bench_latency_table.py --cases ofa160 --runtimes torch" "bench_predictors.py" \
	"bench_validation_split.py" "bench_search.py" "bench_search_speed.py" "bench_token_latency.py" "bench_lm_routes.py" \
	"bench_export_choice.py --run runs/quickstart" "bench_precision.py" \
	"bench_stage_precision.py --subnets 12 --rounds 5" "bench_transfer.py" \
	"bench_export_formats.py" "bench_fuzz.py"

bench: quickstart
	@failed=""; for command in $(BENCH_SET); do \
		echo "== python experiments/$$command"; \
		$(BIN)/python experiments/$$command || failed="$$failed\n  $$command"; \
	done; if [ -n "$$failed" ]; then printf "failed:$$failed\n"; exit 1; fi

# Every benchmark script's --quick mode (seconds to a minute each; tests/test_experiments.py runs the same).
bench-quick: venv
	@for script in experiments/bench_*.py; do echo "== $$script --quick"; $(BIN)/python $$script --quick || exit 1; done

clean:
	rm -rf $(VENV) build site *.egg-info
