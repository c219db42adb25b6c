"""Objectives and constraints: vectorised functions of architectures.

An :class:`Objective` is a name, a function ``fn(archs) -> numpy array`` and a direction.
Built-ins (table latency, MACs, params, size, peak activation memory, predicted accuracy)
are Objectives too, so a user's own evaluator plugs in the same way:

>>> energy = Objective("energy_mj", lambda archs: my_meter.measure(archs))  # doctest: +SKIP
>>> run_search(space, [accuracy, energy], constraints=["energy_mj <= 5"], n_evals=500)  # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from elasticnas.core.errors import ConfigError, ElasticNASError
from elasticnas.supernet.arch import Arch
from elasticnas.supernet.space import SearchSpace


class InfeasibleBudgetError(ElasticNASError, ValueError):
    """No architecture of the space can meet a constraint."""


@dataclass(frozen=True)
class Objective:
    """``fn(archs) -> array`` of one value per architecture.

    ``source`` says where values come from ("counted", "table", "predicted" or "measured");
    ``cheapest(space) -> (value, arch, exact)``, when given, is the least value found over the
    space and whether it is provably the least (used to refuse budgets nobody can meet).
    """

    name: str
    fn: Callable[[Sequence[Arch]], np.ndarray] = field(repr=False)
    maximize: bool = False
    source: str = "measured"
    cheapest: Callable[[SearchSpace], tuple[float, Arch, bool]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", self.name):
            raise ConfigError(f"objective name {self.name!r} must be an identifier (letters, digits, _ and .)")

    def __call__(self, archs: Sequence[Arch]) -> np.ndarray:
        values = np.asarray(self.fn(list(archs)), dtype=np.float64).reshape(-1)
        if len(values) != len(archs):
            raise ConfigError(f"objective {self.name!r} returned {len(values)} values for {len(archs)} architectures")
        return values

    def minimum(self, space: SearchSpace, *, samples: int = 2000, seed: int = 0) -> tuple[float, Arch, bool]:
        """``(value, arch, exact)``: from ``cheapest`` if given, else the least over the
        space's smallest subnet and ``samples`` random ones (not exact)."""
        if self.cheapest is not None:
            value, arch, exact = self.cheapest(space)
            return float(value), arch, bool(exact)
        archs = [space.min(), *space.sample(np.random.default_rng(seed), n=samples if self.source != "measured" else 0)]
        values = self(archs)
        best = int(np.argmin(values))
        return float(values[best]), archs[best], False


@dataclass(frozen=True)
class Constraint:
    """``metric <= upper``: feasible when the metric's value is at most ``upper``."""

    metric: Objective
    upper: float

    @property
    def label(self) -> str:
        return f"{self.metric.name} <= {self.upper:g}"


_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*<=\s*([-+0-9.eE]+)\s*$")


def parse_constraint(text: str | Constraint, metrics: dict[str, Objective]) -> Constraint:
    """A :class:`Constraint` from ``"latency_ms <= 3"``, naming one of ``metrics``."""
    if isinstance(text, Constraint):
        return text
    match = _CONSTRAINT.match(str(text))
    if not match:
        raise ConfigError(f"constraint {text!r} must read 'NAME <= NUMBER', e.g. 'latency_ms <= 3'")
    name, bound = match.group(1), float(match.group(2))
    if name not in metrics:
        raise ConfigError(f"constraint {text!r} names {name!r}, which is none of the metrics: {sorted(metrics)}")
    return Constraint(metrics[name], bound)


def check_feasible(space: SearchSpace, constraints: Sequence[Constraint]) -> None:
    """Raise at once, naming the cheapest subnet's value, if a budget cannot be met.

    An objective with a ``cheapest`` search that cannot prove its minimum (a latency table
    over coupled layers) only refuses what it can prove; the search meets the rest as a constraint.
    """
    for constraint in constraints:
        value, arch, exact = constraint.metric.minimum(space)
        if value > constraint.upper and (exact or constraint.metric.cheapest is None):
            how = "the cheapest subnet" if exact else "the cheapest subnet found (the smallest and 2,000 random ones)"
            raise InfeasibleBudgetError(
                f"no subnet meets {constraint.label}: {how} has {constraint.metric.name} = {value:.6g} "
                f"({arch.to_json()}); raise the budget to at least that"
            )


# ----- built-in objectives ---------------------------------------------------------------
def cost_objective(space: SearchSpace, metric: str) -> Objective:
    """``macs``, ``params``, ``size_bytes``, ``peak_activation_bytes``, ``kv_cache_bytes`` or
    ``memory_bytes`` (weights plus a language model's KV cache at its context), counted analytically."""
    from elasticnas.hardware.counting import count_all

    metrics = ("macs", "params", "size_bytes", "peak_activation_bytes", "kv_cache_bytes", "memory_bytes")
    if metric not in metrics:
        raise ConfigError(f"unknown cost metric {metric!r}; choose one of {list(metrics)}")

    def cheapest(space_: SearchSpace):  # every cost grows with every gene
        return float(count_all(space_, [space_.min()])[metric][0]), space_.min(), True

    return Objective(metric, lambda archs: count_all(space, archs)[metric].astype(np.float64), source="counted",
                     cheapest=cheapest)


def table_latency_objective(table, name: str = "latency_ms") -> Objective:
    """Latency from a :class:`~elasticnas.hardware.LatencyTable` (exact sum of measured layers)."""
    return Objective(name, table.predict, source="table", cheapest=lambda space: table.cheapest())


def predictor_objective(model, name: str = "accuracy", *, maximize: bool = True) -> Objective:
    """Values from a fitted predictor (e.g. ``make_pipeline(ArchEncoder(space), AutoPredictor())``)."""
    return Objective(name, model.predict, maximize=maximize, source="predicted")


def measured_latency_objective(space: SearchSpace, *, device: str = "cpu", runtime: str = "torch",
                               batch_size: int = 1, threads: int | None = None,
                               name: str = "measured_latency_ms") -> Objective:
    """End-to-end latency measured on ``device`` with ``runtime`` (slow: for final checks and small budgets)."""
    from elasticnas.hardware.latency import measure_archs

    def measure(archs):
        return measure_archs(space, archs, device=device, runtime=runtime, batch_size=batch_size, threads=threads,
                             progress=False)

    return Objective(name, measure, source="measured")
