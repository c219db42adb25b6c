"""Keep a latency budget on the device, not only in the table.

The searched subnet for a budget was chosen on predicted latency; before it is exported it is
measured end to end on the target device and runtime. When it measures over the budget, the
next subnet down the searched Pareto front (less accurate, predicted faster) is measured, up
to ``max_tries`` subnets; the first that fits is taken, and every subnet tried is reported.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from elasticnas.core.errors import ConfigError
from elasticnas.core.files import read_csv
from elasticnas.hardware.latency import measure_archs


def front_under(archive_csv: Path, budget_ms: float, space) -> list:
    """The searched subnets predicted within ``budget_ms`` that no other beats on both accuracy and
    latency, most accurate first."""
    archive = read_csv(archive_csv, "search archive", columns=("arch", "feasible", "latency_ms", "accuracy"),
                       numeric=("latency_ms", "accuracy"))
    fits = archive[archive["feasible"].astype(bool) & (archive["latency_ms"] <= budget_ms)]
    fits = fits.sort_values(["accuracy", "latency_ms"], ascending=[False, True])
    front, fastest = [], float("inf")
    for _, row in fits.iterrows():
        if row["latency_ms"] < fastest:
            front.append(space.canonical(row["arch"]))
            fastest = row["latency_ms"]
    if not front:
        raise ConfigError(f"no subnet in {archive_csv.parent} meets {budget_ms} ms; the fastest found takes "
                          f"{archive['latency_ms'].min():.4g} ms")
    return front


def first_within(space, candidates: list, budget_ms: float, *, device: str, runtime: str,
                 threads: int | None = None, max_tries: int = 5) -> tuple[object, float, pd.DataFrame]:
    """The first of ``candidates`` that measures within ``budget_ms``: ``(arch, measured_ms, tried)``."""
    tried = []
    for rank, arch in enumerate(candidates[:max_tries]):
        measured = float(measure_archs(space, [arch], device=device, runtime=runtime, threads=threads)[0])
        tried.append({"front_rank": rank, "arch": arch.to_json(), "measured_ms": measured,
                      "within_budget": measured <= budget_ms})
        if measured <= budget_ms:
            return arch, measured, pd.DataFrame(tried)
    fastest = min(t["measured_ms"] for t in tried)
    raise ConfigError(f"none of the {len(tried)} most accurate searched subnets under {budget_ms} ms measures within "
                      f"it on {device}/{runtime} (fastest: {fastest:.4g} ms); the latency table overestimates "
                      f"this machine's speed: rebuild it (elasticnas profile) or raise the budget")
