"""What every benchmark script here shares: ``--quick`` and ``--results``, and result files that
carry their provenance.

``--quick`` runs the script's own code at toy sizes in seconds (tests/test_experiments.py runs
each so that none rots); its figures mean nothing and go to a scratch folder unless
``--results`` names one. Every CSV a script writes starts with ``# key: value`` lines: the
commit, CPU model, cores, torch and Python versions, the date and whether it was a quick run;
read such a file with :func:`read_results` (pandas' ``comment="#"``).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from elasticnas.core.atomic import atomic_write_text
from elasticnas.hardware.table_build import cpu_model

RESULTS = Path(__file__).resolve().parent / "results"
# What --quick trains: one epoch of the 8x8 digits at two small resolutions (seconds on 2 cores).
QUICK_TRAINING = ("data.name=digits", "data.batch_size=256", "train.bn_calibration_images=256",
                  "train.bn_calibration_batch_size=128", "train.epochs=1", "supernet.overrides.resolutions=[20,24]")


# What --quick gives the pipeline's other stages: a table of 3 timings per layer, 12 subnets measured,
# predictors reported on 2 outer folds (the tuning runs once per fold: 5 folds took half the run).
QUICK_PIPELINE = {"subnets": 12, "trials": 3, "predicted_evals": 400, "table_repeats": 3, "table_rounds": 1,
                  "report_folds": 2}


def quick_pipeline_run(folder: Path, **options) -> Path:
    """A finished quickstart run at toy sizes in ``folder`` (resumed if there): for the scripts that
    study a finished run."""
    from elasticnas.pipeline import quickstart

    quickstart(folder, config="mnist_sandwich", overrides=list(QUICK_TRAINING), progress=False,
               log=lambda *_: None, **{**QUICK_PIPELINE, **options})
    return folder


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run of the same code at toy sizes (seconds); its files go to --results, "
                             "by default a scratch folder, never experiments/results/")
    parser.add_argument("--results", type=Path, default=None,
                        help="folder for the result files (default: experiments/results/)")


def results_folder(args: argparse.Namespace) -> Path:
    """Where this run writes: --results, else experiments/results/ (a scratch folder for --quick)."""
    if args.results is None:
        args.results = Path(tempfile.mkdtemp(prefix="bench_quick_")) if args.quick else RESULTS
    args.results.mkdir(parents=True, exist_ok=True)
    return args.results


def changes_beyond_results(porcelain_status: str) -> bool:
    """Whether ``git status --porcelain`` names a changed file outside experiments/results/: a run
    that rewrites the committed results (its own earlier output, or a sibling benchmark's) still ran
    the committed code."""
    results = RESULTS.relative_to(RESULTS.parents[1]).as_posix() + "/"  # as git names it, from the repository root
    paths = [line[3:].split(" -> ")[-1].strip('"') for line in porcelain_status.splitlines() if line.strip()]
    return any(not path.startswith(results) for path in paths)


def provenance(quick: bool = False) -> dict:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout
    return {"commit": (commit or "unknown") + (" (with uncommitted changes)" if changes_beyond_results(status) else ""),
            "cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "quick": quick}


def write_results(table: pd.DataFrame, path: Path, *, quick: bool = False, index: bool = False) -> Path:
    """``table`` as CSV at ``path`` (atomically), under its provenance header."""
    header = "".join(f"# {key}: {value}\n" for key, value in provenance(quick).items())
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, header + table.to_csv(index=index))
    return path


def read_results(path: Path, **kwargs) -> pd.DataFrame:
    return pd.read_csv(path, comment="#", **kwargs)
