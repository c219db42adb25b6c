"""Multi-objective search over architecture spaces (``elasticnas.search``).

>>> from elasticnas.search import run_search, cost_objective, predictor_objective, table_latency_objective
>>> result = run_search(space, [predictor_objective(acc_model), table_latency_objective(table)],
...                     constraints=["latency_ms <= 3"], algorithm="nsga2", n_evals=2000, seed=0)  # doctest: +SKIP
"""

from elasticnas.search.algorithms import list_algorithms, register_algorithm
from elasticnas.search.api import run_search
from elasticnas.search.guided import run_guided_search
from elasticnas.search.objectives import (
    Constraint,
    InfeasibleBudgetError,
    Objective,
    cost_objective,
    measured_latency_objective,
    parse_constraint,
    predictor_objective,
    table_latency_objective,
)
from elasticnas.search.problem import Archive, ArchProblem, canonical_genes
from elasticnas.search.result import SearchResult, hypervolume, pareto_mask

__all__ = [
    "ArchProblem",
    "Archive",
    "Constraint",
    "InfeasibleBudgetError",
    "Objective",
    "SearchResult",
    "canonical_genes",
    "cost_objective",
    "hypervolume",
    "list_algorithms",
    "measured_latency_objective",
    "pareto_mask",
    "parse_constraint",
    "predictor_objective",
    "register_algorithm",
    "run_guided_search",
    "run_search",
    "table_latency_objective",
]
