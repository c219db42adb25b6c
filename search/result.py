"""Search results: the archive, the Pareto front, hypervolume, best subnets per budget, exports."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from elasticnas.core.atomic import atomic_save_figure, atomic_write_json, atomic_write_text, pyplot
from elasticnas.core.errors import ConfigError
from elasticnas.core.run_layout import ARCHIVE, BEST_UNDER_BUDGET, FRONT, PARETO_PLOT, SEARCH_HISTORY, SEARCH_RESULT


def pareto_mask(F: np.ndarray) -> np.ndarray:
    """Rows of ``F`` (minimised) that no other row dominates."""
    mask = np.zeros(len(F), dtype=bool)
    if len(F):
        mask[NonDominatedSorting().do(F, only_non_dominated_front=True)] = True
    return mask


def hypervolume(F: np.ndarray, reference: np.ndarray) -> float:
    F = F[(reference > F).all(axis=1)] if len(F) else F
    return float(HV(ref_point=reference)(F)) if len(F) else 0.0


@dataclass
class SearchResult:
    """``archive``: every distinct subnet evaluated (canonical ``arch`` JSON, one column per
    metric, ``<metric>_source``, ``feasible``, ``iteration``, ``eval_index``); ``front``: the
    feasible non-dominated rows; ``history``: hypervolume of the feasible front against the
    number of evaluations, at the fixed ``reference_point``."""

    archive: pd.DataFrame
    objectives: dict[str, bool]  # name -> maximize
    constraints: dict[str, tuple[str, float]]  # label -> (metric, upper)
    reference_point: dict[str, float]  # in natural units
    algorithm: str
    seed: int | None
    sources: dict[str, str] = field(default_factory=dict)
    iterations: pd.DataFrame | None = None  # predictor-in-the-loop search: one row per iteration

    def _F(self, frame: pd.DataFrame) -> np.ndarray:
        return np.column_stack([(-1 if up else 1) * frame[name].to_numpy(float)
                                for name, up in self.objectives.items()])

    def _reference(self) -> np.ndarray:
        return np.array([(-1 if up else 1) * self.reference_point[name] for name, up in self.objectives.items()])

    @property
    def feasible(self) -> pd.DataFrame:
        return self.archive[self.archive["feasible"]]

    @property
    def front(self) -> pd.DataFrame:
        feasible = self.feasible
        front = feasible[pareto_mask(self._F(feasible))]
        first = next(iter(self.objectives))
        return front.sort_values(first, ascending=not self.objectives[first]).reset_index(drop=True)

    @property
    def hypervolume(self) -> float:
        return hypervolume(self._F(self.feasible), self._reference())

    @property
    def history(self) -> pd.DataFrame:
        """Hypervolume after each iteration's evaluations."""
        rows, archive = [], self.archive
        ends = archive.groupby("iteration", sort=False)["eval_index"].max().sort_values()
        F, feasible, reference = self._F(archive), archive["feasible"].to_numpy(), self._reference()
        for iteration, last in ends.items():
            upto = archive["eval_index"].to_numpy() <= last
            rows.append({"iteration": iteration, "n_evals": int(upto.sum()),
                         "hypervolume": hypervolume(F[upto & feasible], reference)})
        return pd.DataFrame(rows)

    def best(self, objective: str | None = None, **budgets: float) -> pd.Series:
        """The feasible subnet best in ``objective`` (the first one by default) with every
        ``metric <= value`` of ``budgets``, e.g. ``result.best("accuracy", latency_ms=3)``."""
        objective = objective or next(iter(self.objectives))
        if objective not in self.archive:
            raise ConfigError(f"unknown objective {objective!r}; the archive has {list(self.objectives)}")
        rows = self.feasible
        for metric, upper in budgets.items():
            if metric not in rows:
                raise ConfigError(f"unknown budget metric {metric!r}; the archive has {list(self.archive.columns)}")
            rows = rows[rows[metric] <= upper]
        if rows.empty:
            raise ConfigError(f"no evaluated subnet meets {budgets}")
        maximize = self.objectives.get(objective, False)
        return rows.loc[rows[objective].idxmax() if maximize else rows[objective].idxmin()]

    # ----- exports -----------------------------------------------------------------------
    def save(self, folder: str | Path, budgets: dict[str, list[float]] | None = None) -> Path:
        """archive.csv, front.csv, history.csv, pareto.png, and best_<metric>_<value>.json per budget."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / ARCHIVE, self.archive.to_csv(index=False))
        atomic_write_text(folder / FRONT, self.front.to_csv(index=False))
        atomic_write_text(folder / SEARCH_HISTORY, self.history.to_csv(index=False))
        for metric, values in (budgets or {}).items():
            for upper in values:
                try:
                    row = self.best(**{metric: upper})
                except ConfigError:
                    continue
                atomic_write_json(folder / BEST_UNDER_BUDGET.format(metric=metric, budget=f"{upper:g}"), {
                    "budget": {metric: upper}, "arch": json.loads(row["arch"]),
                    **{k: _plain(row[k]) for k in self.archive.columns if k not in ("arch",)},
                })
        atomic_write_json(folder / SEARCH_RESULT, {
            "algorithm": self.algorithm, "seed": self.seed, "objectives": self.objectives,
            "constraints": self.constraints, "reference_point": self.reference_point, "sources": self.sources,
            "n_evals": len(self.archive), "hypervolume": self.hypervolume,
        })
        self.plot(folder / PARETO_PLOT, budgets)
        return folder

    def plot(self, path: str | Path, budgets: dict[str, list[float]] | None = None) -> Path:
        """The first two objectives: every evaluated subnet, the front, budget lines, the best per budget."""
        names = list(self.objectives)
        x_name, y_name = (names[1], names[0]) if len(names) > 1 else (names[0], names[0])
        fig, ax = pyplot().subplots(figsize=(7, 4.8))
        archive = self.archive
        infeasible = archive[~archive["feasible"]]
        ax.scatter(self.feasible[x_name], self.feasible[y_name], s=8, color="tab:blue", alpha=0.35,
                   label=f"evaluated ({len(archive)})")
        if len(infeasible):
            ax.scatter(infeasible[x_name], infeasible[y_name], s=8, color="grey", alpha=0.3, label="over budget")
        front = self.front.sort_values(x_name)
        ax.plot(front[x_name], front[y_name], "-o", color="tab:red", ms=4, lw=1.5, label=f"Pareto front ({len(front)})")
        chosen = {}  # one star per subnet, labelled with every budget that chose it
        for metric, values in (budgets or {}).items():
            for upper in values:
                if metric == x_name:
                    ax.axvline(upper, color="black", ls="--", lw=1)
                try:
                    best = self.best(y_name, **{metric: upper})
                except ConfigError:
                    continue
                chosen.setdefault(best["arch"], (best, []))[1].append(f"{upper:g}")
        for best, uppers in chosen.values():
            ax.scatter([best[x_name]], [best[y_name]], marker="*", s=180, color="gold", edgecolor="black", zorder=5)
            ax.annotate(f"≤ {', '.join(uppers)}", (best[x_name], best[y_name]), textcoords="offset points",
                        xytext=(6, -12))
        ax.set(xlabel=f"{x_name} ({self.sources.get(x_name, '')})", ylabel=f"{y_name} ({self.sources.get(y_name, '')})",
               title=f"{self.algorithm}: {len(archive)} subnets, hypervolume {self.hypervolume:.4g}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        return atomic_save_figure(fig, path)


def _plain(value):
    return value.item() if hasattr(value, "item") else value
