"""Search algorithms by name: pymoo's evolutionary algorithms, random search, optuna samplers.

Each runner takes the problem, the budget of distinct subnets, a seed and an initial
population (integer gene rows), and returns when the problem's session holds the budget.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.algorithms.moo.unsga3 import UNSGA3
from pymoo.core.callback import Callback
from pymoo.core.population import Population
from pymoo.operators.crossover.ux import UX
from pymoo.optimize import minimize
from pymoo.util.ref_dirs import get_reference_directions

from elasticnas.core.errors import ConfigError
from elasticnas.core.registry import Registry
from elasticnas.search.operators import ResetMutation
from elasticnas.search.problem import ArchProblem, CanonicalDuplicates, SessionBudget, canonical_genes
from elasticnas.search.studies import open_storage, open_study

ALGORITHMS: Registry[Callable] = Registry("search algorithm")
register_algorithm = ALGORITHMS.register
list_algorithms = ALGORITHMS.names
get_algorithm = ALGORITHMS.get


def _initial_population(problem: ArchProblem, initial: np.ndarray, pop_size: int, rng: np.random.Generator):
    """``initial`` rows first, then random distinct subnets, ``pop_size`` in all."""
    upper = problem.space.encoding_upper_bounds
    rows, seen = [], set()
    candidates = list(initial) + [rng.integers(0, upper + 1) for _ in range(50 * pop_size)]
    for row in candidates:
        key = canonical_genes(problem.space, row)[0].tobytes()
        if key not in seen:
            seen.add(key)
            rows.append(row)
        if len(rows) == pop_size:
            break
    return Population.new(X=np.asarray(rows, dtype=float))


class _Iteration(Callback):
    def notify(self, algorithm):
        algorithm.problem.archive.iteration = algorithm.n_gen


def _pymoo(make_algorithm: Callable):
    def run(problem: ArchProblem, n_evals: int, *, seed: int, initial: np.ndarray, pop_size: int, **_) -> None:
        rng = np.random.default_rng(seed)
        pop_size = min(pop_size, n_evals)
        algorithm = make_algorithm(
            problem,
            pop_size=pop_size,
            sampling=_initial_population(problem, initial, pop_size, rng),
            crossover=UX(),
            mutation=ResetMutation(),
            eliminate_duplicates=CanonicalDuplicates(problem),
        )
        # no copies: the duplicate filter and the budget must see the problem that is evaluated
        minimize(problem, algorithm, SessionBudget(problem, n_evals), seed=seed, callback=_Iteration(),
                 verbose=False, copy_algorithm=False, copy_termination=False)

    return run


register_algorithm("nsga2")(_pymoo(lambda problem, **kw: NSGA2(**kw)))


def _agemoea(problem: ArchProblem, **kw):
    from pymoo.algorithms.moo.age import AGEMOEA  # imports numba, which takes seconds

    return AGEMOEA(**kw)


register_algorithm("agemoea")(_pymoo(_agemoea))


def _unsga3(problem: ArchProblem, **kw):
    directions = get_reference_directions("energy", problem.n_obj, kw["pop_size"], seed=1) if problem.n_obj > 2 \
        else get_reference_directions("uniform", 2, n_partitions=max(kw["pop_size"] - 1, 1))
    return UNSGA3(directions, **kw)


register_algorithm("unsga3")(_pymoo(_unsga3))


@register_algorithm("random")
def _random(problem: ArchProblem, n_evals: int, *, seed: int, initial: np.ndarray, pop_size: int, **_) -> None:
    """Uniform random distinct subnets, in batches of ``pop_size``."""
    rng = np.random.default_rng(seed)
    upper = problem.space.encoding_upper_bounds
    pending = list(initial)
    for _attempt in range(100 * n_evals):
        if len(problem.session) >= n_evals:
            return
        batch = pending[: min(pop_size, n_evals - len(problem.session))]
        pending = pending[len(batch) :]
        batch += [rng.integers(0, upper + 1) for _ in range(min(pop_size, n_evals - len(problem.session)) - len(batch))]
        X = canonical_genes(problem.space, np.asarray(batch))
        keys = {row.tobytes(): row for row in X if row.tobytes() not in problem.session}
        if keys:
            problem.archive.iteration += 1
            problem.evaluate(np.asarray(list(keys.values())), return_as_dictionary=True)


# optuna >= 5 reads constraints a trial sets; older samplers take a function that finds them.
_SET_CONSTRAINT = hasattr(optuna.trial.Trial, "set_constraint")
_WORKER = f"{socket.gethostname()}:{os.getpid()}"  # which process evaluated a trial of a shared study


def _optuna(sampler_name: str):
    def run(problem: ArchProblem, n_evals: int, *, seed: int, initial: np.ndarray, storage=None,
            study_name: str = "search", out: Path | None = None, heartbeat_s: int = 10, **_) -> None:
        """Trials go through ``study.optimize``, so with a shared ``storage`` several workers fill one
        study: each counts every worker's finished subnets towards ``n_evals``, and a worker that dies
        mid-trial is noticed by its missing heartbeat and its subnet handed to the next ask."""
        shared = storage is not None
        if storage is None and out is not None:
            storage = f"sqlite:///{Path(out).resolve() / 'optuna.db'}"
        if isinstance(storage, str):
            storage = open_storage(storage, heartbeat_s)

        constraints = None if _SET_CONSTRAINT else (lambda trial: trial.user_attrs.get("constraints", []))
        sampler = (optuna.samplers.NSGAIISampler(seed=seed, constraints_func=constraints)
                   if sampler_name == "nsga2" else
                   optuna.samplers.TPESampler(seed=seed, constraints_func=constraints, multivariate=True,
                                              constant_liar=shared))
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            study = open_study(storage, study_name, sampler, problem.n_obj)
            if not study.get_trials(deepcopy=False):
                for row in initial:
                    study.enqueue_trial({f"g{i}": int(v) for i, v in enumerate(row)})
            seen: set[int] = set()
            _take_finished_trials(problem, study, seen)
            if len(problem.session) < n_evals:
                filled = _budget_filled(problem, n_evals, seen, shared)
                _optimize(study, _objective(problem, storage, filled if shared else None), n_trials=20 * n_evals,
                          callbacks=[_stop_at_budget(seen, filled)])
            _take_finished_trials(problem, study, seen)
            if shared:
                _await_other_workers(problem, study, seen, deadline=time.monotonic() + 2 * heartbeat_s + 1)
        finally:
            optuna.logging.set_verbosity(verbosity)

    return run


class _BudgetFilled(Exception):
    """Raised by a shared study's trial that began after the workers had filled the budget."""


class _QuietBudgetFilled(logging.Filter):
    """Drops optuna's two warnings about a trial failed by :class:`_BudgetFilled`: the one
    carrying its traceback, then the one giving its value."""

    def __init__(self) -> None:
        super().__init__()
        self._value_line: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and isinstance(record.exc_info[1], _BudgetFilled):
            self._value_line = message.split(" failed", 1)[0] + " failed with value"
            return False
        if self._value_line is not None and message.startswith(self._value_line):
            self._value_line = None
            return False
        return True


def _optimize(study, objective, **kw) -> None:
    """``study.optimize``, ending quietly at a trial that found the budget filled (optuna would
    log that deliberate failure as an error, with a traceback)."""
    logger, quiet = logging.getLogger("optuna.study._optimize"), _QuietBudgetFilled()
    logger.addFilter(quiet)
    try:
        study.optimize(objective, **kw)
    except _BudgetFilled:
        pass
    finally:
        logger.removeFilter(quiet)


def _budget_filled(problem: ArchProblem, n_evals: int, seen: set[int], shared: bool) -> Callable[[object], bool]:
    """Whether the session holds the budget, counting in a shared study every worker's finished
    trials (fetched first; alone, there are none to fetch). Asked after each trial, and in a
    shared study also once a new trial is RUNNING: a worker that finished and found no RUNNING
    trial has written its result, so a trial begun after that must not be evaluated, or that
    result would miss it. (A check before ``ask`` would leave a gap between the check and the trial.)"""
    def filled(study) -> bool:
        if shared:
            _take_finished_trials(problem, study, seen)
        return len(problem.session) >= n_evals

    return filled


def _objective(problem: ArchProblem, storage, budget_filled: Callable[[object], bool] | None = None):
    upper = problem.space.encoding_upper_bounds
    beats = getattr(storage, "get_heartbeat_interval", lambda: None)() is not None

    def objective(trial) -> list[float]:
        if beats:  # before any parameter is written: optuna's beat thread may not have run yet
            storage.record_heartbeat(trial._trial_id)
        if budget_filled is not None and budget_filled(trial.study):
            trial.set_user_attr("not_evaluated", "the study had reached its budget when this trial began")
            raise _BudgetFilled  # the trial fails without parameters, which samplers ignore
        trial.set_user_attr("worker", _WORKER)
        x = np.array([[trial.suggest_int(f"g{i}", 0, int(u)) for i, u in enumerate(upper)]])
        problem.archive.iteration = trial.number
        out = problem.evaluate(x, return_as_dictionary=True)
        violations = [float(g) for g in out["G"][0]] if problem.n_ieq_constr else []
        if _SET_CONSTRAINT:
            for i, g in enumerate(violations):
                trial.set_constraint(f"c{i}", g)
        elif violations:
            trial.set_user_attr("constraints", violations)
        return [float(f) for f in out["F"][0]]

    return objective


def _take_finished_trials(problem: ArchProblem, study, seen: set[int]) -> None:
    """Evaluate the study's finished trials this process has not seen (its own, after a restart, or
    other workers'), so the session, the journal and the result cover the whole study."""
    upper = problem.space.encoding_upper_bounds
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if trial.number in seen:
            continue
        seen.add(trial.number)
        problem.archive.iteration = trial.number
        problem.evaluate(np.array([[trial.params[f"g{i}"] for i in range(len(upper))]]),
                         return_as_dictionary=True)


def _await_other_workers(problem: ArchProblem, study, seen: set[int], deadline: float) -> None:
    """Let the trials other workers are still evaluating finish (a dead worker's for at most its
    grace period), so every worker's result covers the whole study."""
    while study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)) and \
            time.monotonic() < deadline:
        time.sleep(0.1)
    _take_finished_trials(problem, study, seen)


def _stop_at_budget(seen: set[int], filled: Callable[[object], bool]):
    def callback(study, trial) -> None:
        seen.add(trial.number)  # evaluated by the objective already
        if filled(study):
            study.stop()

    return callback


register_algorithm("optuna-nsga2")(_optuna("nsga2"))
register_algorithm("optuna-tpe")(_optuna("tpe"))


def check_algorithm(name: str, n_objectives: int) -> None:
    get_algorithm(name)
    if name == "unsga3" and n_objectives < 2:
        raise ConfigError("unsga3 needs at least 2 objectives (it is meant for 3 or more)")
