"""Measured subnets of a trained run (``evaluations.csv``) and the predictors fitted on them."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.pipeline import make_pipeline
from tqdm.auto import tqdm

from elasticnas.core.atomic import atomic_save_figure, atomic_write_text, pyplot
from elasticnas.core.errors import ConfigError
from elasticnas.core.files import reading
from elasticnas.core.journal import append_row, check_appendable, journal_columns, open_append, read_journal
from elasticnas.core.run_layout import (
    EVALUATIONS,
    HELD_OUT_PREDICTIONS,
    PREDICTOR_PLOT,
    PREDICTOR_REPORTS,
    PREDICTORS,
    TABLE_JSON,
    TABLES,
)
from elasticnas.hardware.counting import count_all
from elasticnas.hardware.lookup import LatencyTable
from elasticnas.hardware.quantize import evaluate_deployed
from elasticnas.hardware.runtimes import check_runtime
from elasticnas.predictors import (
    ArchEncoder,
    AutoPredictor,
    fit_with_folds,
    measurement_noise,
    quality_report,
    save_predictor,
)
from elasticnas.quality_metric import TOP1, QualityMetric, quality_of
from elasticnas.runs import TrainedRun, load_trained, run_space, spread_by_macs
from elasticnas.supernet.space import SearchSpace

COST_COLUMNS = ("macs", "params", "size_bytes", "peak_activation_bytes")
EVAL_COLUMNS = ("arch", "resolution", *COST_COLUMNS, "table_latency_ms", "val_top1", "val_loss", "val_images",
                "eval_seconds")
# Written since the measurement reports its noise; journals from before lack them.
NOISE_COLUMNS = TOP1.noise_columns
# Written since spaces search precision (bits; the arch JSON holds it too); journals from before lack it.
PRECISION_COLUMN = "precision"


def fit_targets(space: SearchSpace) -> dict[str, tuple[str, str]]:
    """target column -> (kind for the quality report, file stem): the run's quality metric, latency."""
    metric = quality_of(space)
    return {metric.column: (metric.report_kind, "accuracy"), "table_latency_ms": ("latency", "latency")}


def table_folder(run_folder: str | Path, device: str, runtime: str, phase: str | None = None) -> Path:
    """Where the run keeps its table for ``device``/``runtime`` (and another ``phase`` than its
    space's own), each checked first: each becomes part of a path, so only known names (never
    ``..`` or ``/``) are allowed."""
    check_runtime(runtime, device)
    return Path(run_folder) / TABLES / (f"{device.replace(':', '')}_{runtime}" + (f"_{phase}" if phase else ""))


def has_latency_table(run_folder: str | Path, device: str, runtime: str) -> bool:
    """Whether the run already holds a table for ``device``/``runtime`` (else using it builds one)."""
    return (table_folder(run_folder, device, runtime) / TABLE_JSON).exists()


def timed_phase(space: SearchSpace, phase: str | None) -> tuple[SearchSpace, str | None]:
    """The space that times ``phase`` and the suffix of its table's folder: none for the space's
    own phase (or ``phase=None``), whose table is the run's."""
    if phase is None:
        return space, None
    timed = space.in_phase(phase)  # refuses a phase the space does not have
    return timed, (None if timed.fingerprint == space.fingerprint else phase)


def latency_table_for(run_folder: str | Path, space: SearchSpace, *, device: str = "cpu",
                      runtime: str = "torch", threads: int | None = None, calibrate: int = 10, seed: int = 0,
                      repeats: int = 30, rounds: int = 3, progress: bool = True,
                      check_speed: bool = False, phase: str | None = None) -> LatencyTable:
    """The run's latency table for ``device``/``runtime`` (and ``phase``, one of the space's
    :attr:`~SearchSpace.phases`, where it times several), built (resumably) on first use.

    A new table is calibrated on ``calibrate`` random subnets measured among its layers;
    ``repeats`` and ``rounds`` are :meth:`LatencyTable.build`'s (an existing table is kept as built).
    ``check_speed``: read the reference workload now and warn once when the machine runs at
    another speed than when the table was built (predictions stay at the build-time speed,
    so searches are reproducible; see :meth:`LatencyTable.at_current_speed`).
    """
    space, suffix = timed_phase(space, phase)
    folder = table_folder(run_folder, device, runtime, suffix)
    if (folder / TABLE_JSON).exists():
        table = LatencyTable.load(folder)
        table.check(space)
        return table.at_current_speed(rescale=False) if check_speed else table
    return LatencyTable.build(space, device=device, runtime=runtime, threads=threads, seed=seed, out=folder,
                              repeats=repeats, rounds=rounds, progress=progress, calibrate=calibrate)


def read_evaluations(run_folder: str | Path, journal: str | Path = EVALUATIONS) -> pd.DataFrame:
    """The measured subnets in the run's ``journal`` (a path relative to the run folder)."""
    return read_journal(Path(run_folder) / journal, required=EVAL_COLUMNS, numeric=EVAL_COLUMNS[1:],
                        what="evaluations journal (one measured subnet per row)")


def measured_archs(run_folder: str | Path, space: SearchSpace, evaluations: pd.DataFrame) -> list:
    """The architecture of each row of ``evaluations`` (read from the run's journal)."""
    with reading(Path(run_folder) / EVALUATIONS, "evaluations journal"):
        return [space.canonical(text) for text in evaluations["arch"]]


def measure_run(run_folder: str | Path, n: int = 300, *, seed: int = 0, device: str = "cpu",
                runtime: str = "torch", progress: bool = True, run: TrainedRun | None = None) -> pd.DataFrame:
    """Measure subnets spread over the MACs range until ``evaluations.csv`` holds ``n`` distinct ones.

    Each row: canonical architecture JSON, MACs, params, size, peak activation memory, table
    latency, and validation top-1/loss after exact BN recalibration. Rows are appended as they
    finish, so an interrupted run resumes; a canonical subnet is never measured twice.
    """
    if n < 1:
        raise ConfigError(f"--n must be >= 1, but got {n}")
    run_folder = Path(run_folder)
    run = run or load_trained(run_folder)
    space = run.space
    done = read_evaluations(run_folder)
    seen = {space.canonical(text) for text in done["arch"]}
    todo = [a for a in spread_by_macs(space, n, seed=seed) if a not in seen][: max(n - len(seen), 0)]
    table = latency_table_for(run_folder, space, device=device, runtime=runtime, seed=seed, progress=progress)
    if not todo:
        return done
    check_appendable(run_folder / EVALUATIONS)  # before a progress bar is drawn
    bar = tqdm(total=n, initial=len(seen), desc="measuring subnets", unit="subnet", disable=not progress)
    try:
        append_evaluations(run_folder, run, todo, table, run.eval_data("val"), on_each=lambda: bar.update())
    finally:
        bar.close()
    return read_evaluations(run_folder)


def append_evaluations(run_folder: Path, run: TrainedRun, archs: list, table: LatencyTable, data,
                       on_each=None, journal: str | Path = EVALUATIONS) -> list[dict]:
    """Evaluate ``archs`` (BN recalibrated, on ``data``) and append one row each to the run's
    ``journal`` (evaluations.csv unless named; a path relative to the run folder)."""
    if not archs:
        return []
    space, metric = run.space, quality_of(run.space)
    costs = count_all(space, archs)
    latency = table.predict(archs)
    rows = []
    path = Path(run_folder) / journal
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = journal_columns(path)
    with open_append(path) as handle, torch.no_grad():
        for i, arch in enumerate(archs):
            start = time.perf_counter()
            result = evaluate_deployed(run.supernet, arch, data, runtime=table.metadata["runtime"])
            row = {"arch": arch.to_json(), "resolution": arch.resolution, PRECISION_COLUMN: arch.precision,
                   **{c: int(costs[c][i]) for c in COST_COLUMNS}, "table_latency_ms": float(latency[i]),
                   "val_top1": result.top1, "val_loss": result.loss, "val_images": result.images,
                   "eval_seconds": round(time.perf_counter() - start, 4),
                   **TOP1.columns_of(result), **metric.columns_of(result)}
            append_row(handle, row, columns)
            rows.append(row)
            if on_each is not None:
                on_each()
    return rows


def fit_run(run_folder: str | Path, *, n_trials: int = 40, seed: int = 0, encoding: str = "ordinal",
            report_folds: int = 5, n_jobs: int = -1, progress: bool = True) -> pd.DataFrame:
    """Fit accuracy and latency predictors on ``evaluations.csv``; write them with their quality reports.

    The report of each predictor comes from an outer cross-validation of the whole tuning
    procedure (``report_folds`` folds), so it is measured on subnets the tuning never saw. The
    folds' tunings and the final one run in ``n_jobs`` processes (-1: one per core; the
    predictors are the same for any number).
    """
    run_folder = Path(run_folder)
    space = run_space(run_folder)
    evaluations = read_evaluations(run_folder)
    if len(evaluations) < max(2 * report_folds, 10):
        raise ConfigError(f"{run_folder / EVALUATIONS} holds {len(evaluations)} subnets; fitting needs at least "
                          f"{max(2 * report_folds, 10)}: run `elasticnas measure {run_folder} --n 300` first")
    archs = measured_archs(run_folder, space, evaluations)
    out = run_folder / PREDICTORS
    out.mkdir(parents=True, exist_ok=True)
    rows, predictions = [], {}
    targets, metric = fit_targets(space), quality_of(space)
    for target, (kind, stem) in tqdm(targets.items(), desc="fitting predictors", disable=not progress):
        y = (metric.of_row(evaluations) if target == metric.column else evaluations[target]).to_numpy(dtype=float)
        model = make_pipeline(ArchEncoder(space, encoding), AutoPredictor(n_trials=n_trials, seed=seed))
        model, oof = fit_with_folds(model, archs, y, cv=report_folds, seed=seed, n_jobs=n_jobs)
        report = quality_report(y, oof, kind)
        auto = model[-1]
        save_predictor(model, out / f"{stem}.skops", space=space, target=target, report=report)
        rows.append({"target": target, "kind": kind, "samples": len(y), "members": "+".join(auto.member_names_),
                     "inner_cv_tau": auto.cv_score_, **report,
                     **(accuracy_noise(evaluations, metric) if target == metric.column else {})})
        predictions[target] = (y, oof, report)
    reports = pd.DataFrame(rows)
    held_out = pd.concat([pd.DataFrame({"target": t, "kind": targets[t][0], "arch": evaluations["arch"],
                                        "measured": y, "predicted": oof}) for t, (y, oof, _) in predictions.items()])
    atomic_write_text(out / HELD_OUT_PREDICTIONS, held_out.to_csv(index=False))
    atomic_write_text(out / PREDICTOR_REPORTS, reports.to_csv(index=False))
    plot_predictor_quality(predictions, out / PREDICTOR_PLOT)
    return reports


def accuracy_noise(evaluations: pd.DataFrame, metric: QualityMetric = TOP1) -> dict[str, float]:
    """The measured quality metric's own noise (see :func:`measurement_noise`); NaN for a
    journal written before the measurement recorded it."""
    columns = (metric.column, *metric.noise_columns)
    if not set(columns) <= set(evaluations.columns):
        return measurement_noise([], [], [], [])
    values = {c: pd.to_numeric(evaluations[c], errors="coerce").to_numpy(dtype=float) for c in columns}
    return measurement_noise(*values.values())


def describe_accuracy_noise(reports: pd.DataFrame, metric: QualityMetric = TOP1) -> str:
    """One line: the accuracy predictor's held-out tau next to the measurement's own ceiling."""
    row = reports[reports["target"] == metric.column].iloc[0]
    line = f"accuracy predictor: held-out Kendall tau {row['kendall_tau']:.2f}"
    line += "" if metric is TOP1 else f" ({metric.label})"
    if not np.isfinite(row.get("retest_tau", float("nan"))):
        return line + " (this journal predates the noise columns: measure again for the ceiling)"
    share = row["noise_share"]
    noise = (f"sampling noise is at most {share:.0%} of the subnets' {metric.short} variance" if share < 1 else
             f"the subnets' {metric.short} differ no more than sampling noise does, so there is no ranking to "
             f"learn (train longer, or measure on more validation data)")
    return (f"{line}; the measurement's own ceiling, tau {row['retest_tau']:.2f} between two measurements "
            f"(halves of the validation {metric.samples} agree at {row['retest_tau_halves']:.2f}); {noise} "
            f"(mean standard error {row['mean_se']:.{metric.digits}f} {metric.difference_unit})")


def plot_predictor_quality(predictions: dict, path: Path) -> Path:
    """Held-out predicted vs measured values, one panel per target."""
    fig, axes = pyplot().subplots(1, len(predictions), figsize=(5 * len(predictions), 4.5), squeeze=False)
    for ax, (target, (y, oof, report)) in zip(axes[0], predictions.items(), strict=True):
        ax.scatter(y, oof, s=10, alpha=0.6)
        low, high = float(min(y.min(), oof.min())), float(max(y.max(), oof.max()))
        ax.plot([low, high], [low, high], color="grey", lw=1)
        ax.set(xlabel=f"measured {target}", ylabel=f"predicted {target} (held out)",
               title=f"tau {report['kendall_tau']:.3f}, within {report['tolerance']}: {report['within']:.0f}%")
    fig.tight_layout()
    return atomic_save_figure(fig, path)
