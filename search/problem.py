"""The search problem: a pymoo Problem over a space's integer encoding, backed by an archive.

Every vector in the encoding's box decodes to a valid architecture, so plain integer
operators never produce an invalid one. Two vectors that differ only in genes of inactive
blocks are the same subnet: they are compared by their canonical genes, both for duplicate
elimination and in the :class:`Archive`, which evaluates each canonical subnet at most once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from pymoo.core.duplicate import DuplicateElimination
from pymoo.core.problem import Problem
from pymoo.core.termination import Termination
from tqdm.auto import tqdm

from elasticnas.core.files import reading
from elasticnas.core.journal import append_row, open_append, read_journal
from elasticnas.search.objectives import Constraint, Objective
from elasticnas.supernet.space import SearchSpace


def canonical_genes(space: SearchSpace, X: np.ndarray) -> np.ndarray:
    """``X`` with every inactive gene set to 0 (vectorised)."""
    return space.canonical_genes(X)


def _keys(X: np.ndarray) -> list[bytes]:
    return [row.tobytes() for row in np.ascontiguousarray(X, dtype=np.int64)]


class Archive:
    """Every distinct subnet evaluated, in order, with the value of every metric.

    With a ``journal`` path, each batch is appended to a CSV as it is evaluated, and an
    archive built on an existing journal serves its values instead of evaluating again.
    """

    def __init__(self, space: SearchSpace, metrics: Sequence[Objective], journal: str | Path | None = None,
                 progress: tqdm | None = None):
        self.space, self.metrics = space, list({m.name: m for m in metrics}.values())
        self.journal = Path(journal) if journal is not None else None
        self.progress = progress
        self.rows: list[dict] = []
        self.keys: list[bytes] = []  # canonical genes of each row
        self.index: dict[bytes, int] = {}
        self.iteration = 0
        if self.journal is not None:
            names = [m.name for m in self.metrics]
            rows = read_journal(self.journal, required=["arch", "iteration", *names], numeric=["iteration", *names],
                                what="search journal")
            with reading(self.journal, "search journal"):
                keys = [_keys(self.space.encode([self.space.canonical(arch)]))[0] for arch in rows["arch"]]
            for key, row in zip(keys, rows.to_dict("records"), strict=True):
                if key not in self.index:
                    self.index[key] = len(self.rows)
                    self.rows.append(row)
                    self.keys.append(key)

    def __len__(self) -> int:
        return len(self.rows)

    def values(self, X: np.ndarray) -> tuple[np.ndarray, list[bytes]]:
        """Metric values (rows of ``X`` x metrics), evaluating only subnets never seen before."""
        canonical = canonical_genes(self.space, X)
        keys = _keys(canonical)
        new = list(dict.fromkeys(k for k in keys if k not in self.index))
        if new:
            first = {k: i for i, k in reversed(list(enumerate(keys)))}
            archs = self.space.decode(canonical[[first[k] for k in new]])
            columns = {m.name: m(archs) for m in self.metrics}
            handle = open_append(self.journal) if self.journal else None
            try:
                for i, (key, arch) in enumerate(zip(new, archs, strict=True)):
                    row = {"arch": arch.to_json(), "iteration": self.iteration,
                           **{name: float(values[i]) for name, values in columns.items()}}
                    self.index[key] = len(self.rows)
                    self.rows.append(row)
                    self.keys.append(key)
                    if handle is not None:
                        append_row(handle, row)
            finally:
                if handle is not None:
                    handle.close()
        names = [m.name for m in self.metrics]
        return np.array([[self.rows[self.index[k]][n] for n in names] for k in keys], dtype=np.float64), keys

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["arch", "iteration", *[m.name for m in self.metrics]])


class ArchProblem(Problem):
    """Minimise the objectives (maximised ones negated) subject to ``G = metric - upper <= 0``.

    ``session`` holds the canonical keys this search has visited (whether evaluated now or
    served from a resumed archive); the search's budget counts them.
    """

    def __init__(self, space: SearchSpace, objectives: Sequence[Objective], constraints: Sequence[Constraint],
                 archive: Archive):
        self.space, self.archive = space, archive
        self.objectives, self.constraints = list(objectives), list(constraints)
        self.session: dict[bytes, None] = {}
        self._columns = {m.name: i for i, m in enumerate(archive.metrics)}
        super().__init__(n_var=len(space.encoding_upper_bounds), n_obj=len(self.objectives),
                         n_ieq_constr=len(self.constraints), xl=0, xu=space.encoding_upper_bounds, vtype=int)

    def objective_matrix(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        F = np.column_stack([(-1 if o.maximize else 1) * values[:, self._columns[o.name]] for o in self.objectives])
        G = np.column_stack([values[:, self._columns[c.metric.name]] - c.upper for c in self.constraints]) \
            if self.constraints else np.zeros((len(values), 0))
        return F, G

    def _evaluate(self, X, out, *args, **kwargs):
        values, keys = self.archive.values(np.rint(X).astype(np.int64))
        before = len(self.session)
        self.session.update(dict.fromkeys(keys))
        if self.archive.progress is not None:
            self.archive.progress.update(len(self.session) - before)
        out["F"], G = self.objective_matrix(values)
        if self.constraints:
            out["G"] = G


class CanonicalDuplicates(DuplicateElimination):
    """Duplicates by canonical genes: within a population, against others, and against every
    subnet this search has already visited."""

    def __init__(self, problem: ArchProblem):
        super().__init__()
        self.problem = problem

    def _do(self, pop, other, is_duplicate):
        space = self.problem.space
        keys = _keys(canonical_genes(space, np.rint(pop.get("X")).astype(np.int64)))
        if other is None:
            seen = set(self.problem.session)
        else:
            seen = set(_keys(canonical_genes(space, np.rint(other.get("X")).astype(np.int64))))
        for i, key in enumerate(keys):
            if key in seen:
                is_duplicate[i] = True
            elif other is None:
                seen.add(key)
        return is_duplicate


class SessionBudget(Termination):
    """Stop once the search has visited ``n_evals`` distinct subnets."""

    def __init__(self, problem: ArchProblem, n_evals: int):
        super().__init__()
        self.problem, self.n_evals = problem, n_evals

    def _update(self, algorithm) -> float:
        return len(self.problem.session) / self.n_evals
