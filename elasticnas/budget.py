"""Keep a latency budget on the device, not only in the table.

The searched subnet for a budget was chosen on predicted latency; before it is exported it is
measured end to end on the target device and runtime. When it measures over the budget, the
walk goes down the candidates (the searched Pareto front, or the accuracy-checked list of
:mod:`elasticnas.accuracy_check`; most accurate first) to the first subnet whose prediction,
scaled by the worst measured/predicted ratio seen so far, fits: a table that is 7% optimistic
on this machine today skips the subnets within 7% of the budget at once. At most ``max_tries``
subnets are timed; the first that fits is taken, and every one tried is reported with its
``rank``, its place in the candidates.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pandas as pd

from elasticnas.core.errors import ConfigError
from elasticnas.core.files import read_csv
from elasticnas.hardware.latency import measure_archs


class FrontPoint(NamedTuple):
    arch: object
    predicted_ms: float
    predicted_top1: float  # the search's accuracy objective


def front_under(archive_csv: Path, budget_ms: float, space) -> list[FrontPoint]:
    """The searched subnets predicted within ``budget_ms`` that no other beats on both accuracy
    and latency, most accurate first."""
    archive = read_csv(archive_csv, "search archive", columns=("arch", "feasible", "latency_ms", "accuracy"),
                       numeric=("latency_ms", "accuracy"))
    fits = archive[archive["feasible"].astype(bool) & (archive["latency_ms"] <= budget_ms)]
    fits = fits.sort_values(["accuracy", "latency_ms"], ascending=[False, True])
    front, fastest = [], float("inf")
    for _, row in fits.iterrows():
        if row["latency_ms"] < fastest:
            front.append(FrontPoint(space.canonical(row["arch"]), float(row["latency_ms"]), float(row["accuracy"])))
            fastest = row["latency_ms"]
    if not front:
        raise ConfigError(f"no subnet in {archive_csv.parent} meets {budget_ms} ms; the fastest found takes "
                          f"{archive['latency_ms'].min():.4g} ms")
    return front


def first_within(space, candidates: list[tuple], budget_ms: float, *, device: str, runtime: str,
                 threads: int | None = None, max_tries: int = 5,
                 strict: bool = True) -> tuple[object, float, pd.DataFrame]:
    """The first of ``candidates`` (``(arch, predicted_ms, ...)``, most accurate first) that measures within
    ``budget_ms``: ``(arch, measured_ms, tried)``. When none does within ``max_tries``, raise, or with
    ``strict=False`` return the fastest one measured."""
    tried, scale, index = [], 1.0, 0
    while index < len(candidates) and len(tried) < max_tries:
        arch, predicted = candidates[index][:2]
        measured = float(measure_archs(space, [arch], device=device, runtime=runtime, threads=threads)[0])
        tried.append({"rank": index, "arch": arch.to_json(), "predicted_ms": predicted, "measured_ms": measured,
                      "within_budget": measured <= budget_ms})
        if measured <= budget_ms:
            return arch, measured, pd.DataFrame(tried)
        scale = max(scale, measured / predicted)
        index = next((i for i in range(index + 1, len(candidates)) if candidates[i][1] * scale <= budget_ms),
                     len(candidates))
    fastest = min(tried, key=lambda t: t["measured_ms"])
    if strict:
        raise ConfigError(f"none of the {len(tried)} candidates tried under {budget_ms} ms measures within it on "
                          f"{device}/{runtime} (fastest: {fastest['measured_ms']:.4g} ms); the latency table "
                          f"underestimates this machine today: rebuild it (elasticnas profile) or raise the budget")
    return space.canonical(fastest["arch"]), fastest["measured_ms"], pd.DataFrame(tried)
