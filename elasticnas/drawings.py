"""A run's tables and plots drawn again from its CSV and JSON files (``elasticnas redraw``).

Every input is read, and refused if broken, before anything is drawn, so a refusal leaves the
run's plots as they were.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from elasticnas.core.atomic import atomic_write_text
from elasticnas.core.files import read_csv, read_json, reading
from elasticnas.core.run_layout import (
    ARCHIVE,
    BEST_UNDER_BUDGET,
    EXPORTS,
    EXPORTS_TABLE,
    HELD_OUT_PREDICTIONS,
    METRICS,
    PARETO_PLOT,
    PREDICTOR_PLOT,
    PREDICTORS,
    REPORT,
    SEARCH,
    SEARCH_RESULT,
    TRAINING_CURVES,
)
from elasticnas.runs import read_metrics


def redraw(run_folder: str | Path) -> list[Path]:
    """Re-draw the run's tables and plots from its CSV/JSON files; returns what was written."""
    from elasticnas.supernet.training import plot_training_curves

    run_folder = Path(run_folder)
    drawings = []  # (path, draw) once every input has been read
    if (run_folder / METRICS).exists():
        metrics = read_metrics(run_folder / METRICS)

        def curves(path: Path) -> None:
            with reading(run_folder / METRICS, "training metrics (one row per epoch)"):
                plot_training_curves(metrics, path)

        drawings.append((run_folder / TRAINING_CURVES, curves))
    drawings += _predictor_drawing(run_folder) + _search_drawings(run_folder)
    reports = sorted(p for p in (run_folder / EXPORTS).glob(f"*/{REPORT}") if not p.parent.name.startswith("."))
    if reports:
        rows = [{"export": str(p.parent), **{k: v for k, v in read_json(p, "export report", fields=()).items()
                                              if not isinstance(v, (dict, list))}} for p in reports]
        table = pd.DataFrame(rows).to_csv(index=False)
        drawings.append((run_folder / EXPORTS_TABLE, lambda path: atomic_write_text(path, table)))
    for path, draw in drawings:
        draw(path)
    return [path for path, _ in drawings]


def _predictor_drawing(run_folder: Path) -> list:
    from elasticnas.measure import plot_predictor_quality
    from elasticnas.predictors import quality_report

    oof = run_folder / PREDICTORS / HELD_OUT_PREDICTIONS
    if not oof.exists():
        return []
    what = "held-out predictions (target, kind, measured, predicted per row)"
    frame = read_csv(oof, what, columns=("target", "kind", "measured", "predicted"), numeric=("measured", "predicted"))
    with reading(oof, what):
        kinds = dict(zip(frame["target"], frame["kind"], strict=False))
        data = {t: (g["measured"].to_numpy(), g["predicted"].to_numpy(),
                    quality_report(g["measured"], g["predicted"], kinds[t])) for t, g in frame.groupby("target")}
    return [(run_folder / PREDICTORS / PREDICTOR_PLOT, lambda path: plot_predictor_quality(data, path))]


def _search_drawings(run_folder: Path) -> list:
    from elasticnas.search.result import SearchResult

    drawings = []
    for settings in sorted((run_folder / SEARCH).glob(f"*/{SEARCH_RESULT}")):
        archive = read_csv(settings.parent / ARCHIVE, "search archive")
        with reading(settings, "search settings"):
            meta = read_json(settings, "search settings", fields=("objectives", "constraints", "reference_point",
                                                                  "algorithm", "seed"))
            result = SearchResult(archive, meta["objectives"], {k: tuple(v) for k, v in meta["constraints"].items()},
                                  meta["reference_point"], meta["algorithm"], meta["seed"], meta.get("sources", {}))
        every_best = BEST_UNDER_BUDGET.format(metric="latency_ms", budget="*")
        budgets = sorted(float(p.stem.split("_")[-1]) for p in settings.parent.glob(every_best))
        marks = {"latency_ms": budgets} if budgets else None
        drawings.append((settings.parent / PARETO_PLOT,
                         lambda path, result=result, marks=marks: result.plot(path, marks)))
    return drawings
