"""``run_search``: one entry point over every algorithm, objective and constraint."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from elasticnas.core.errors import ConfigError
from elasticnas.core.journal import keep_settings
from elasticnas.core.run_layout import SEARCH_JOURNAL as JOURNAL
from elasticnas.core.run_layout import SEARCH_SETTINGS as SETTINGS
from elasticnas.search.algorithms import check_algorithm, get_algorithm
from elasticnas.search.objectives import Constraint, Objective, check_feasible, cost_objective, parse_constraint
from elasticnas.search.problem import Archive, ArchProblem
from elasticnas.search.result import SearchResult
from elasticnas.search.studies import open_storage
from elasticnas.supernet.arch import Arch
from elasticnas.supernet.space import SearchSpace

COSTS = ("macs", "params", "size_bytes", "peak_activation_bytes", "kv_cache_bytes", "memory_bytes")


def resolve_constraints(space: SearchSpace, objectives: Sequence[Objective],
                        constraints: Sequence[str | Constraint], metrics: Sequence[Objective] = ()) -> list[Constraint]:
    known = {m.name: m for m in (*[cost_objective(space, c) for c in COSTS], *metrics, *objectives)}
    return [parse_constraint(c, known) for c in constraints]


def run_search(space: SearchSpace, objectives: Sequence[Objective], *,
               constraints: Sequence[str | Constraint] = (), algorithm: str = "nsga2", n_evals: int,
               seed: int | None = None, pop_size: int = 50, initial: Sequence[Arch] = (),
               metrics: Sequence[Objective] = (), reference_point: dict[str, float] | None = None,
               out: str | Path | None = None, storage=None, study_name: str = "search",
               heartbeat_s: int = 10, progress: bool = False) -> SearchResult:
    """Search ``space`` for the Pareto front of ``objectives`` under ``constraints``.

    ``n_evals`` distinct subnets are evaluated (the smallest and largest first, then
    ``initial``, then what the algorithm proposes); ``constraints`` are :class:`Constraint`
    objects or text such as ``"latency_ms <= 3"`` naming an objective, one of ``metrics``
    (evaluated, not optimised) or a counted cost (``macs``, ``params``, ...). With ``out``,
    every evaluation is journaled there and a call with the same settings resumes.

    ``storage`` (optuna algorithms only): a database URL such as
    ``postgresql://user@host/db`` (or an optuna storage) whose study ``study_name`` several workers share; each
    worker stops when the study holds ``n_evals`` distinct subnets (give each its own
    ``seed``), and a worker's trial with no heartbeat for ``2 * heartbeat_s`` seconds is
    failed and its subnet retried.

    >>> result = run_search(space, [accuracy, latency], constraints=["latency_ms <= 3"],
    ...                     n_evals=2000, seed=0)  # doctest: +SKIP
    >>> result.front, result.best("accuracy", latency_ms=3)  # doctest: +SKIP
    """
    objectives = list(objectives)
    if not objectives or not all(isinstance(o, Objective) for o in objectives):
        raise ConfigError("run_search needs at least one Objective (see elasticnas.search.Objective)")
    names = [o.name for o in objectives]
    if len(set(names)) != len(names):
        raise ConfigError(f"objective names must be distinct, but got {names}")
    if n_evals < 2 or pop_size < 2:
        raise ConfigError(f"n_evals and pop_size must be >= 2, but got n_evals={n_evals}, pop_size={pop_size}")
    check_algorithm(algorithm, len(objectives))
    if storage is not None and not algorithm.startswith("optuna"):
        raise ConfigError(f"a shared study storage needs an optuna algorithm (optuna-tpe, optuna-nsga2), "
                          f"but the algorithm is {algorithm!r}")
    constraints = resolve_constraints(space, objectives, constraints, metrics)
    check_feasible(space, constraints)
    if isinstance(storage, str):  # connect before any output, so a bad URL is one line
        storage = open_storage(storage, heartbeat_s)
    if seed is None:
        seed = int(np.random.default_rng().integers(2**31 - 1))
    folder = Path(out) if out is not None else None
    if folder is not None:
        _check_settings(folder, {"space_fingerprint": space.fingerprint, "algorithm": algorithm, "seed": seed,
                                 "pop_size": pop_size, "objectives": names,
                                 "constraints": [c.label for c in constraints]})
    all_metrics = [*objectives, *metrics, *[c.metric for c in constraints]]
    bar = tqdm(total=n_evals, desc=f"search ({algorithm})", unit="subnet", disable=not progress)
    archive = Archive(space, all_metrics, journal=folder / JOURNAL if folder else None, progress=bar)
    problem = ArchProblem(space, objectives, constraints, archive)
    first = space.encode([space.min(), space.max(), *[space.canonical(a) for a in initial]])
    try:
        get_algorithm(algorithm)(problem, n_evals, seed=seed, initial=first, pop_size=pop_size, storage=storage,
                                 study_name=study_name, heartbeat_s=heartbeat_s, out=folder)
    finally:
        bar.close()
    result = _result(problem, algorithm, seed, reference_point)
    if folder is not None:
        result.save(folder, {c.metric.name: [c.upper] for c in constraints})
    return result


def _check_settings(folder: Path, settings: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    keep_settings(folder / SETTINGS, settings, "a search", "resume with the same settings or choose another folder")


def _result(problem: ArchProblem, algorithm: str, seed: int, reference_point: dict | None) -> SearchResult:
    archive = problem.archive
    frame = archive.frame()
    frame = frame[[k in problem.session for k in archive.keys]].reset_index(drop=True)
    frame.insert(1, "eval_index", np.arange(len(frame)))
    values = frame[[m.name for m in archive.metrics]].to_numpy(float)
    _, G = problem.objective_matrix(values)
    frame["feasible"] = (G <= 0).all(axis=1)
    sources = {m.name: m.source for m in archive.metrics}
    for name, source in sources.items():
        frame[f"{name}_source"] = source
    objectives = {o.name: o.maximize for o in problem.objectives}
    if reference_point is None:
        reference_point = _default_reference(problem, frame)
    missing = set(objectives) - set(reference_point)
    if missing:
        raise ConfigError(f"reference_point lacks {sorted(missing)}")
    return SearchResult(frame, objectives, {c.label: (c.metric.name, c.upper) for c in problem.constraints},
                        {k: float(reference_point[k]) for k in objectives}, algorithm, seed, sources)


def _default_reference(problem: ArchProblem, frame: pd.DataFrame) -> dict[str, float]:
    """10% beyond the worse of the smallest and largest subnet in each objective."""
    space = problem.space
    anchors = frame[frame["arch"].isin([space.min().to_json(), space.max().to_json()])]
    reference = {}
    for o in problem.objectives:
        values = (anchors if len(anchors) == 2 else frame)[o.name].to_numpy(float)
        low, high = values.min(), values.max()
        margin = 0.1 * (high - low) if high > low else 0.1 * abs(high) + 1e-9
        reference[o.name] = low - margin if o.maximize else high + margin
    return reference
