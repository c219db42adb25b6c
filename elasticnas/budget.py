"""Keep a latency budget on the device, not only in the table.

The searched subnet for a budget was chosen on predicted latency; before it is exported it is
measured end to end on the target device and runtime. When it measures over the budget, the
walk goes down the candidates (the searched Pareto front, or the accuracy-checked list of
:mod:`elasticnas.accuracy_check`; most accurate first) to the first subnet whose prediction,
scaled by the worst measured/predicted ratio seen so far, fits: a table that is 7% optimistic
on this machine today skips the subnets within 7% of the budget at once. A reading far above
its prediction is taken twice (the faster counts), and where nothing left fits at that ratio
the fastest subnet left is tried before giving up. At most ``max_tries`` timings are taken;
the first subnet that fits is taken, and every one tried is reported with its ``rank``, its
place in the candidates.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pandas as pd

from elasticnas.core.errors import ConfigError
from elasticnas.core.files import read_csv
from elasticnas.hardware.counting import count_all
from elasticnas.hardware.latency import measure_archs
from elasticnas.quality_metric import quality_of


class FrontPoint(NamedTuple):
    arch: object
    predicted_ms: float
    predicted_quality: float  # the search's quality objective (quality_of(space))


def within_memory(space, archs: list, memory_mb: float):
    """Whether each architecture's weights plus KV cache (``memory_bytes``, exact) fit in ``memory_mb`` MiB."""
    return count_all(space, archs)["memory_bytes"] <= memory_mb * 2**20


def front_under(archive_csv: Path, budget_ms: float, space, memory_mb: float | None = None) -> list[FrontPoint]:
    """The searched subnets predicted within ``budget_ms`` (and, given ``memory_mb``, whose weights
    plus KV cache fit in that many MiB) that no other beats on both quality (the run's
    :func:`~elasticnas.quality_metric.quality_of`) and latency, best first."""
    metric = quality_of(space)
    archive = read_csv(archive_csv, "search archive", columns=("arch", "feasible", "latency_ms", metric.objective),
                       numeric=("latency_ms", metric.objective))
    fits = archive[archive["feasible"].astype(bool) & (archive["latency_ms"] <= budget_ms)]
    if memory_mb is not None and len(fits):
        fits = fits[within_memory(space, [space.canonical(text) for text in fits["arch"]], memory_mb)]
    fits = fits.sort_values([metric.objective, "latency_ms"], ascending=[not metric.maximize, True])
    front, fastest = [], float("inf")
    for _, row in fits.iterrows():
        if row["latency_ms"] < fastest:
            front.append(FrontPoint(space.canonical(row["arch"]), float(row["latency_ms"]),
                                    float(row[metric.objective])))
            fastest = row["latency_ms"]
    if not front:
        cap = "" if memory_mb is None else f" within {memory_mb} MiB"
        raise ConfigError(f"no subnet in {archive_csv.parent} meets {budget_ms} ms{cap}; the fastest found takes "
                          f"{archive['latency_ms'].min():.4g} ms")
    return front


def first_within(space, candidates: list[tuple], budget_ms: float, *, device: str, runtime: str,
                 threads: int | None = None, max_tries: int = 8, strict: bool = True,
                 retime_above: float = 1.2) -> tuple[object, float, pd.DataFrame]:
    """The first of ``candidates`` (``(arch, predicted_ms, ...)``, most accurate first) that measures within
    ``budget_ms``: ``(arch, measured_ms, tried)``, with at most ``max_tries`` timings in all.

    A reading over the budget and more than ``retime_above`` times its prediction is taken again
    and the faster kept (one busy moment must not decide); where no candidate left fits at the
    worst ratio seen, the fastest one left is tried, if it is faster than all tried so far. When
    none fits, raise naming the fastest time measured, or with ``strict=False`` return that one."""
    tried, scale, index, timings, left = [], 1.0, 0, 0, set(range(len(candidates)))
    while index is not None and timings < max_tries:
        arch, predicted = candidates[index][:2]
        readings = [_time(space, arch, device, runtime, threads)]
        if readings[0] > max(budget_ms, predicted * retime_above) and timings + 1 < max_tries:
            readings.append(_time(space, arch, device, runtime, threads))
        timings += len(readings)
        measured = min(readings)
        left.discard(index)
        tried.append({"rank": index, "arch": arch.to_json(), "predicted_ms": predicted, "measured_ms": measured,
                      "readings": len(readings), "within_budget": measured <= budget_ms})
        if measured <= budget_ms:
            return arch, measured, pd.DataFrame(tried)
        scale = max(scale, measured / predicted)
        index = _next_candidate(candidates, left, index, scale, budget_ms, [t["predicted_ms"] for t in tried])
    fastest = min(tried, key=lambda t: t["measured_ms"])
    if strict:
        raise ConfigError(f"no subnet measured within {budget_ms} ms on {device}/{runtime}: {len(tried)} tried in "
                          f"{timings} timings, the fastest at {fastest['measured_ms']:.4g} ms; the latency table "
                          f"underestimates this machine today: rebuild it (elasticnas profile) or raise the budget")
    return space.canonical(fastest["arch"]), fastest["measured_ms"], pd.DataFrame(tried)


def _time(space, arch, device: str, runtime: str, threads: int | None) -> float:
    return float(measure_archs(space, [arch], device=device, runtime=runtime, threads=threads)[0])


def _next_candidate(candidates: list[tuple], left: set[int], index: int, scale: float, budget_ms: float,
                    tried_predictions: list[float]) -> int | None:
    """The next candidate down the list predicted to fit at ``scale``; else the fastest one left,
    when it is predicted faster than every one tried; else None."""
    fitting = [i for i in sorted(left) if i > index and candidates[i][1] * scale <= budget_ms]
    if fitting:
        return fitting[0]
    fastest = min(left, key=lambda i: candidates[i][1], default=None)
    if fastest is not None and candidates[fastest][1] < min(tried_predictions):
        return fastest
    return None
