"""Integer variation operators for architecture genes.

Genes have 2-25 choices, so real-coded operators (SBX, polynomial mutation) with rounding
mostly give back a parent; once duplicates of visited subnets are refused, that stalls the
mating loop. Uniform crossover and a random reset of a few genes always move.
"""

from __future__ import annotations

import numpy as np
from pymoo.core.mutation import Mutation


class ResetMutation(Mutation):
    """Redraw each gene uniformly with probability ``rate / n_var`` (at least one gene per child)."""

    def __init__(self, rate: float = 1.5, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate

    def _do(self, problem, X, random_state=None, **kwargs):
        rng = random_state if random_state is not None else np.random.default_rng()
        X = np.rint(X).astype(np.int64)
        n, n_var = X.shape
        upper = np.asarray(problem.xu, dtype=np.int64)
        redraw = rng.random((n, n_var)) < self.rate / n_var
        redraw[np.arange(n), rng.integers(0, n_var, n)] = True
        fresh = np.floor(rng.random((n, n_var)) * (upper + 1)).astype(np.int64)
        return np.where(redraw, fresh, X).astype(float)
