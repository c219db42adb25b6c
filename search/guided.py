"""Predictor-in-the-loop search (in the manner of MSuNAS and DyNAS-T's LINAS).

Expensive objectives (``source="measured"``, e.g. top-1 evaluated on the supernet) are
measured for an initial design, then each iteration: fit a predictor per expensive metric,
search on predictions only (``inner_evals`` cheap evaluations), measure ``per_iteration``
candidates spread along the predicted front, and repeat until ``n_real_evals`` subnets are
measured. Each iteration records the hypervolume of the measured front at a fixed reference
point, the predictors' Kendall tau on the new measurements, and the seconds spent on the
machinery itself (fitting and inner search, not measuring).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.pipeline import make_pipeline
from tqdm.auto import tqdm

from elasticnas.core.atomic import atomic_write_text
from elasticnas.core.errors import ConfigError
from elasticnas.core.run_layout import GUIDED_ITERATIONS
from elasticnas.core.run_layout import MEASURED_JOURNAL as REAL_JOURNAL
from elasticnas.predictors import ArchEncoder, AutoPredictor, kendall_tau
from elasticnas.search.api import _check_settings, _result, resolve_constraints, run_search
from elasticnas.search.objectives import Constraint, Objective, check_feasible
from elasticnas.search.problem import Archive, ArchProblem
from elasticnas.search.result import SearchResult, pareto_mask
from elasticnas.supernet.space import SearchSpace


def default_predictor(seed: int):
    return AutoPredictor(candidates=("ridge", "svr", "gp"), n_trials=6, cv=3, ensemble=2, seed=seed)


def run_guided_search(space: SearchSpace, objectives: Sequence[Objective], *,
                      constraints: Sequence[str | Constraint] = (), n_real_evals: int = 200, n_initial: int = 50,
                      per_iteration: int = 25, inner_evals: int = 20_000, inner_algorithm: str = "nsga2",
                      inner_pop_size: int = 100, predictor: Callable[[int], object] = default_predictor,
                      encoding: str = "ordinal", initial: Sequence = (), seed: int = 0,
                      reference_point: dict[str, float] | None = None,
                      out: str | Path | None = None, progress: bool = False) -> SearchResult:
    """Search with predictors standing in for the expensive objectives; ``result.iterations``
    holds the per-iteration record. See the module docstring for the loop.

    The initial design is the smallest and largest subnet, then ``initial``, then random ones.
    """
    objectives = list(objectives)
    constraints = resolve_constraints(space, objectives, constraints)
    check_feasible(space, [c for c in constraints if c.metric.source != "measured"])
    if not 2 <= n_initial <= n_real_evals or per_iteration < 1:
        raise ConfigError(f"need 2 <= n_initial <= n_real_evals and per_iteration >= 1, but got n_initial={n_initial}, "
                          f"n_real_evals={n_real_evals}, per_iteration={per_iteration}")
    folder = Path(out) if out is not None else None
    if folder is not None:
        _check_settings(folder, {"space_fingerprint": space.fingerprint, "algorithm": f"guided-{inner_algorithm}",
                                 "seed": seed, "objectives": [o.name for o in objectives], "n_initial": n_initial,
                                 "per_iteration": per_iteration, "inner_evals": inner_evals,
                                 "constraints": [c.label for c in constraints]})
    metrics = list({m.name: m for m in [*objectives, *[c.metric for c in constraints]]}.values())
    expensive = [m for m in metrics if m.source == "measured"]
    archive = Archive(space, metrics, journal=folder / REAL_JOURNAL if folder else None)
    problem = ArchProblem(space, objectives, constraints, archive)
    rng = np.random.default_rng(seed)

    design = [space.min(), space.max(), *[space.canonical(a) for a in initial], *space.sample(rng, n=4 * n_initial)]
    design = list(dict.fromkeys(design))[:n_initial]
    bar = tqdm(total=n_real_evals, desc="guided search (measured subnets)", unit="subnet", disable=not progress)
    problem.evaluate(space.encode(design), return_as_dictionary=True)
    bar.update(len(problem.session))
    records, iteration = [], 0
    reference = None
    while len(problem.session) < n_real_evals:
        iteration += 1
        started = time.perf_counter()
        measured = _measured(problem)
        archs = [space.canonical(a) for a in measured["arch"]]
        models = {m.name: make_pipeline(ArchEncoder(space, encoding), predictor(seed + iteration))
                  .fit(archs, measured[m.name].to_numpy(float)) for m in expensive}
        surrogate = {m.name: Objective(m.name, models[m.name].predict, maximize=m.maximize, source="predicted")
                     for m in expensive}
        inner_objectives = [surrogate.get(o.name, o) for o in objectives]
        inner_constraints = [Constraint(surrogate.get(c.metric.name, c.metric), c.upper) for c in constraints]
        front = _result(problem, "guided", seed, reference).front if len(measured) else measured
        inner = run_search(space, inner_objectives, constraints=inner_constraints, algorithm=inner_algorithm,
                           n_evals=inner_evals, seed=seed + iteration, pop_size=inner_pop_size,
                           initial=[space.canonical(a) for a in front["arch"]][:inner_pop_size])
        budget = min(per_iteration, n_real_evals - len(problem.session))
        chosen = _spread_candidates(inner, problem, budget)
        overhead = time.perf_counter() - started
        if chosen.empty:
            break
        archive.iteration = iteration
        before = len(problem.session)
        problem.evaluate(space.encode([space.canonical(a) for a in chosen["arch"]]), return_as_dictionary=True)
        bar.update(len(problem.session) - before)
        result = _result(problem, "guided", seed, reference)
        reference = reference or result.reference_point
        real = result.archive.set_index("arch").loc[chosen["arch"]]
        records.append({"iteration": iteration, "n_real": len(problem.session), "hypervolume": result.hypervolume,
                        "overhead_seconds": overhead,
                        **{f"tau_{m.name}": kendall_tau(real[m.name], chosen[m.name]) for m in expensive}})
    bar.close()
    result = _result(problem, f"guided-{inner_algorithm}", seed, reference_point or reference)
    result.iterations = pd.DataFrame(records)
    if folder is not None:
        result.save(folder, {c.metric.name: [c.upper] for c in constraints})
        atomic_write_text(folder / GUIDED_ITERATIONS, result.iterations.to_csv(index=False))
    return result


def _measured(problem: ArchProblem) -> pd.DataFrame:
    return _result(problem, "guided", 0, {o.name: 0.0 for o in problem.objectives}).archive


def _spread_candidates(inner: SearchResult, problem: ArchProblem, k: int) -> pd.DataFrame:
    """``k`` unmeasured subnets: the predicted front first, evenly spread along its first
    cheap axis, then successive non-dominated layers of the rest."""
    pool = inner.archive[inner.archive["feasible"]]
    measured = set(_measured(problem)["arch"])
    pool = pool[~pool["arch"].isin(measured)]
    chosen = []
    F = np.column_stack([(-1 if up else 1) * pool[n].to_numpy(float) for n, up in inner.objectives.items()])
    remaining = np.arange(len(pool))
    while len(chosen) < k and len(remaining):
        layer = remaining[pareto_mask(F[remaining])]
        need = k - len(chosen)
        if len(layer) > need:
            order = layer[np.argsort(F[layer, -1])]
            layer = order[np.unique(np.linspace(0, len(order) - 1, need).round().astype(int))]
        chosen.extend(layer.tolist())
        remaining = np.setdiff1d(remaining, layer)
    return pool.iloc[chosen].reset_index(drop=True)
