"""Search in a run folder: objectives from the run's predictors, tables and supernet."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from elasticnas.core.config import require_range
from elasticnas.core.errors import ConfigError
from elasticnas.core.run_layout import ACCURACY_PREDICTOR, PREDICTORS, SEARCH
from elasticnas.measure import append_evaluations, latency_table_for, read_evaluations
from elasticnas.predictors import load_predictor
from elasticnas.quality_metric import quality_of
from elasticnas.runs import load_trained, run_space
from elasticnas.search import (
    Constraint,
    Objective,
    SearchResult,
    cost_objective,
    predictor_objective,
    run_guided_search,
    run_search,
    table_latency_objective,
)
from elasticnas.search.studies import check_storage_url

# "accuracy" names the run's quality objective whatever it is (a language model's: bits_per_byte);
# "latency_<phase>" one phase's latency where the space times several (PHASE_LATENCY)
OBJECTIVES = ("accuracy", "bits_per_byte", "latency", "macs", "params", "size_bytes", "peak_activation_bytes",
              "memory_bytes")
PHASE_LATENCY = "latency_"


def phase_latency_objectives(run_folder: Path, space, phases, *, device: str, runtime: str, seed: int,
                             progress: bool) -> dict[str, Objective]:
    """phase -> its latency (``latency_<phase>_ms``) from the run's table for that phase, built on
    first use; a phase the space does not time is refused, naming those it does."""
    for phase in phases:
        space.in_phase(phase)  # refuses an unknown phase before any table is built
    return {phase: table_latency_objective(
                latency_table_for(run_folder, space, device=device, runtime=runtime, seed=seed, progress=progress,
                                  check_speed=True, phase=phase), f"{PHASE_LATENCY}{phase}_ms")
            for phase in dict.fromkeys(phases)}


def measured_accuracy_objective(run_folder: Path, table) -> Objective:
    """The run's quality metric (validation top-1, or bits per byte) measured on the trained
    supernet (BN recalibrated); every measurement lands in evaluations.csv, and subnets already
    there are not measured again."""
    run = load_trained(run_folder)
    data = run.eval_data("val")
    metric = quality_of(run.space)
    known = {row["arch"]: metric.of_row(row) for row in read_evaluations(run_folder).to_dict("records")}

    def measure(archs):
        todo = [a for a in dict.fromkeys(archs) if a.to_json() not in known]
        for row in append_evaluations(run_folder, run, todo, table, data):
            known[row["arch"]] = metric.of_row(row)
        return np.array([known[a.to_json()] for a in archs])

    return Objective(metric.objective, measure, maximize=metric.maximize, source="measured")


def predicted_quality_objective(run_folder: Path, space) -> Objective:
    """The run's quality metric as its fitted accuracy predictor predicts it."""
    path = run_folder / PREDICTORS / ACCURACY_PREDICTOR
    if not path.exists():
        raise ConfigError(f"no accuracy predictor in {run_folder / PREDICTORS}: run "
                          f"`elasticnas fit {run_folder}` first, or search with --real-evals N")
    metric = quality_of(space)
    return predictor_objective(load_predictor(path, space), metric.objective, maximize=metric.maximize)


def _check_search_inputs(objectives: Sequence[str], budgets_ms: Sequence[float], phase_budgets_ms: Mapping[str, float],
                         memory_budget_mb: float | None, storage: str | None, real_evals: int) -> None:
    """Refuse what no search can run, before any work."""
    if storage is not None:
        check_storage_url(storage)
    if storage is not None and real_evals:
        raise ConfigError("a shared study storage is for searches on the predictor; measured subnets (--real-evals) "
                          "are written to the one run folder, so run those in one process")
    unknown = [o for o in objectives if o not in OBJECTIVES and not o.startswith(PHASE_LATENCY)]
    if unknown or len(objectives) < 1:
        raise ConfigError(f"unknown objectives {unknown}; choose from {list(OBJECTIVES)} or "
                          f"{PHASE_LATENCY}<phase> where the space times phases")
    for budget in budgets_ms:
        require_range("--latency-budget-ms", budget, above=0)
    for phase, budget in phase_budgets_ms.items():
        require_range(f"--phase-budget-ms {phase}", budget, above=0)
    if memory_budget_mb is not None:
        require_range("--max-memory-mb", memory_budget_mb, above=0)


def search_run(run_folder: str | Path, *, objectives: Sequence[str] = ("accuracy", "latency"),
               latency_budgets_ms: Sequence[float] = (), memory_budget_mb: float | None = None,
               phase_budgets_ms: Mapping[str, float] | None = None, device: str = "cpu", runtime: str = "torch",
               algorithm: str = "nsga2", real_evals: int = 0, predicted_evals: int = 20_000, pop_size: int = 100,
               seed: int = 0, out: str | Path | None = None, storage: str | None = None, study: str = "search",
               heartbeat_s: int = 10, progress: bool = True) -> tuple[SearchResult, Path]:
    """Search the run's space; returns the result and the folder it was saved in.

    ``real_evals=0`` searches on the fitted accuracy predictor alone (``predicted_evals``
    evaluations); ``real_evals=N`` runs the predictor-in-the-loop search, measuring N subnets
    on the supernet. Latency is the run's lookup table for ``device``/``runtime``. Budgets
    constrain latency to the largest one; the best subnet under each is saved as JSON.
    ``memory_budget_mb`` keeps subnets whose weights plus KV cache (``memory_bytes``) fit in it.
    Where the space times several phases (a language model: ``prefill``, ``decode``), the
    objective ``latency_<phase>`` is that phase's table latency, and ``phase_budgets_ms``
    (phase -> ms) keeps each phase within its budget; ``latency`` stays the run's own table's.
    ``storage``/``study``: a database URL and study name shared by several search workers
    (optuna algorithms, predictor search), each writing its own ``out``.
    """
    run_folder = Path(run_folder)
    phase_budgets_ms = dict(phase_budgets_ms or {})
    _check_search_inputs(objectives, latency_budgets_ms, phase_budgets_ms, memory_budget_mb, storage, real_evals)
    space = run_space(run_folder)
    metric = quality_of(space)
    if "bits_per_byte" in objectives and metric.objective != "bits_per_byte":
        raise ConfigError(f"objective 'bits_per_byte' is a language model's; this run measures {metric.label}: "
                          f"search it with 'accuracy'")
    table = latency_table_for(run_folder, space, device=device, runtime=runtime, seed=seed, progress=progress,
                              check_speed=True)
    latency = table_latency_objective(table, "latency_ms")
    phased = phase_latency_objectives(
        run_folder, space, [o.removeprefix(PHASE_LATENCY) for o in objectives if o.startswith(PHASE_LATENCY)]
        + list(phase_budgets_ms), device=device, runtime=runtime, seed=seed, progress=progress)
    built = []
    for name in objectives:
        if name in ("accuracy", "bits_per_byte"):
            built.append(measured_accuracy_objective(run_folder, table) if real_evals
                         else predicted_quality_objective(run_folder, space))
        elif name == "latency":
            built.append(latency)
        elif name.startswith(PHASE_LATENCY):
            built.append(phased[name.removeprefix(PHASE_LATENCY)])
        else:
            built.append(cost_objective(space, name))
    constraints = [Constraint(latency, max(latency_budgets_ms))] if latency_budgets_ms else []
    constraints += [Constraint(phased[phase], budget) for phase, budget in phase_budgets_ms.items()]
    if memory_budget_mb is not None:
        constraints.append(Constraint(cost_objective(space, "memory_bytes"), memory_budget_mb * 2**20))
    metrics = [] if "latency" in objectives else [latency]
    metrics += [phased[p] for p in phased if PHASE_LATENCY + p not in objectives]  # a budget's phase, recorded
    folder = Path(out) if out is not None else run_folder / SEARCH / (f"{algorithm}_real{real_evals}_seed{seed}")
    if real_evals:
        measured = read_evaluations(run_folder)["arch"].tolist()
        result = run_guided_search(space, built, constraints=constraints, n_real_evals=real_evals,
                                   n_initial=max(2, min(real_evals // 2, 50)), per_iteration=max(1, real_evals // 8),
                                   inner_evals=predicted_evals, inner_algorithm=algorithm,
                                   initial=measured, seed=seed, out=folder, progress=progress)
    else:
        result = run_search(space, built, constraints=constraints, algorithm=algorithm, n_evals=predicted_evals,
                            seed=seed, pop_size=pop_size, metrics=metrics, out=folder, storage=storage,
                            study_name=study, heartbeat_s=heartbeat_s, progress=progress)
    budgets = {"latency_ms": sorted(latency_budgets_ms)} if latency_budgets_ms else {}
    result.save(folder, budgets)
    return result, folder


def best_per_budget(result: SearchResult, budgets_ms: Sequence[float]) -> pd.DataFrame:
    """One row per budget: the most accurate subnet found within it."""
    rows = []
    first = next(iter(result.objectives))
    for budget in sorted(budgets_ms):
        best = result.best(first, latency_ms=budget)
        rows.append({"budget_ms": budget, **{k: best[k] for k in result.archive.columns
                                             if k in (*result.objectives, "latency_ms", "arch")}})
    return pd.DataFrame(rows)
