"""Where the accuracy predictor extrapolates, choose a budget's export on measured accuracy.

The search maximises the accuracy predictor, and at its optimum the predictor can be least to
be trusted: fitted on a hundred noisy measurements of nearly alike subnets, an additive model
scores the combination of every gene's best-looking choice above any subnet it was fitted on,
and the search goes exactly there. So when the subnet predicted best within a budget is
predicted above every measured subnet of the run, the ``top_k`` searched subnets predicted
best within the budget are measured on the validation split (BN recalibrated, quantized where
the subnet is int8: as deployed), the run's measured subnets predicted within the budget join
them, and the walk of :mod:`elasticnas.budget` goes down this list ordered by measured
validation top-1. Within the measured range the prediction stands: there a predictor fitted on
many subnets carries less noise than one measurement (``experiments/bench_export_choice.py``
compares the two on both kinds of supernet). Subnets measured only for this choice are kept in
their own journal (``exports/accuracy_checks.csv``), not in the evaluations the predictors are
fitted on, so a resumed run neither measures them twice nor refits on them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from elasticnas.budget import FrontPoint, within_memory
from elasticnas.core.errors import ConfigError
from elasticnas.core.run_layout import ACCURACY_CHECKS, EXPORTS
from elasticnas.measure import append_evaluations, latency_table_for, read_evaluations
from elasticnas.quality_metric import TOP1, QualityMetric, quality_of

CHECKS = f"{EXPORTS}/{ACCURACY_CHECKS}"


def check_columns(metric: QualityMetric = TOP1) -> tuple[str, ...]:
    return ("arch", "source", "predicted_ms", metric.column, metric.noise_columns[0])


def best_measured_quality(run_folder: str | Path, metric: QualityMetric = TOP1) -> float:
    """The best measured quality among the run's measured subnets (the worst possible when none is)."""
    return metric.best(metric.of_row(read_evaluations(run_folder)))


def checked_candidates(run_folder: str | Path, run, searched: list[FrontPoint], budget_ms: float, *,
                       top_k: int, device: str = "cpu", runtime: str = "torch",
                       memory_mb: float | None = None) -> pd.DataFrame:
    """The subnets a budget's export is chosen from, most accurate *measured* first.

    ``searched``: the searched front within the budget, most accurate predicted first
    (:func:`elasticnas.budget.front_under`); its first ``top_k`` are measured where not already.
    Returns one row per candidate (:func:`check_columns`; ``source`` is ``searched <rank>`` or
    ``measured``), ordered by the measured quality metric (best first), then predicted latency.
    Measured subnets join when predicted within the budget and, given ``memory_mb``, when their
    weights plus KV cache fit in that many MiB (``searched`` is expected to fit already).
    """
    if top_k < 1:
        raise ConfigError(f"the accuracy check needs top_k >= 1 searched subnets to measure, but got {top_k}")
    run_folder = Path(run_folder)
    space, metric = run.space, quality_of(run.space)
    se = metric.noise_columns[0]
    table = latency_table_for(run_folder, space, device=device, runtime=runtime, check_speed=True)
    measured = {row["arch"]: row for row in read_evaluations(run_folder).to_dict("records")}
    checked = {row["arch"]: row for row in read_evaluations(run_folder, CHECKS).to_dict("records")}
    ranks = {point.arch.to_json(): rank for rank, point in enumerate(searched[:top_k])}
    todo = [space.canonical(text) for text in ranks if text not in measured and text not in checked]
    if todo:  # the validation data (2,000 calibration images with it) is loaded only to measure
        for row in append_evaluations(run_folder, run, todo, table, run.eval_data("val"), journal=CHECKS):
            checked[row["arch"]] = row
    known = {**checked, **measured}
    pool = {text: space.canonical(text) for text in dict.fromkeys([*ranks, *measured])}
    if memory_mb is not None:
        fits = within_memory(space, list(pool.values()), memory_mb)
        pool = {text: arch for (text, arch), fit in zip(pool.items(), fits, strict=True) if text in ranks or fit}
    predicted_ms = table.predict(list(pool.values()))
    rows = [{"arch": text, "source": f"searched {ranks[text]}" if text in ranks else "measured",
             "predicted_ms": float(ms), metric.column: float(metric.of_row(known[text])),
             se: float(known[text].get(se, float("nan")))}
            for text, ms in zip(pool, predicted_ms, strict=True) if text in ranks or ms <= budget_ms]
    frame = pd.DataFrame(rows, columns=list(check_columns(metric)))
    return frame.sort_values([metric.column, "predicted_ms"], ascending=[not metric.maximize, True], kind="stable",
                             ignore_index=True)
