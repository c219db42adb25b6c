"""Does a latency table still hold on this machine? Measure fresh subnets and compare.

Fresh random subnets (not the table's calibration subnets) are measured end to end in two
or more rounds, each between readings of the reference workload. The table's predictions are
scored twice against the measurements (share within +-10%, mean absolute percentage error,
Kendall tau, median predicted/measured ratio): *as built*, the milliseconds search and export
predict with (they keep the build-time speed, and warn when the machine has drifted beyond
10%), and *rescaled* by the reference workload's time now against its time at build, which
tells how much of an error is the machine's speed rather than the table. Next to them, the
same scores of one round of the measurement against another: the floor no table can beat
here today.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from elasticnas.core.errors import ConfigError
from elasticnas.hardware.latency import measure_archs
from elasticnas.hardware.lookup import LatencyTable
from elasticnas.hardware.reference import relative_change
from elasticnas.hardware.table_calibration import calibration_subnets


def agreement(predicted: np.ndarray, measured: np.ndarray) -> dict:
    """Share within +-10%, MAPE and Kendall tau of ``predicted`` against ``measured``."""
    predicted, measured = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    error = np.abs(predicted - measured) / measured
    tau = kendalltau(predicted, measured)[0] if len(measured) >= 2 else float("nan")
    return {"within10": float((error <= 0.10).mean()), "mape": float(error.mean()), "tau": float(tau),
            "median_ratio": float(np.median(predicted / measured))}


def predictions_at_two_speeds(table: LatencyTable, archs, now_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """``(as built, rescaled to now)`` predictions of ``archs`` in milliseconds.

    A normalised table converts its reference units with the reference's time at build, then
    now; a raw one scales its milliseconds by the same ratio. Without a build-time reference
    time both are the table's own predictions."""
    built = table.metadata.get("reference_ms")
    if table.normalised:
        return table.at_speed(built or table.speed_ms).predict(archs), table.at_speed(now_ms).predict(archs)
    as_built = table.predict(archs)
    return as_built, as_built * (now_ms / built if built else 1.0)


def require_check_size(n: int, rounds: int = 2) -> None:
    if n < 2 or rounds < 2:
        raise ConfigError(f"a check needs at least 2 subnets and 2 rounds, got {n} subnets and {rounds} rounds")


def check_table(table: LatencyTable, n: int = 20, *, seed: int = 0, rounds: int = 2,
                progress: bool = True) -> tuple[dict, pd.DataFrame]:
    """``(summary, per-subnet rows)`` of ``n`` fresh subnets measured against ``table``."""
    require_check_size(n, rounds)
    space, meta = table.space, table.metadata
    calibrating = set(meta.get("calibration_archs", ()))
    pool = calibration_subnets(space, table.resolutions, n + len(calibrating), seed=seed + 7919)
    archs = [arch for arch in pool if arch.to_json() not in calibrating][:n]
    clock = table.reference_clock()
    units = measure_archs(space, archs, runtime=meta["runtime"], device=meta["device"], batch_size=table.batch_size,
                          threads=meta["threads"], rounds=rounds, per_round=True, progress=progress, reference=clock)
    now = clock.typical_ms()
    as_built, rescaled = predictions_at_two_speeds(table, archs, now)
    measured = np.median(units, axis=0) * now
    built = meta.get("reference_ms")
    summary = {
        "subnets": len(archs), "rounds": rounds, "normalised": table.normalised,
        **agreement(as_built, measured), **{f"rescaled_{k}": v for k, v in agreement(rescaled, measured).items()},
        **{f"noise_{k}": v for k, v in agreement(units[1] * now, units[0] * now).items()},
        "reference_built_ms": built, "reference_now_ms": now,
        "speed_change": relative_change(now, built) if built else float("nan"),
        "drift_repeats": len(clock.events),
    }
    rows = pd.DataFrame({"arch": [a.to_json() for a in archs], "predicted_ms": as_built,
                         "predicted_rescaled_ms": rescaled, "measured_ms": measured,
                         **{f"round{r}_ms": units[r] * now for r in range(rounds)}})
    return summary, rows


def describe_check(summary: dict) -> str:
    """The check's summary as a few lines for the terminal."""
    change = summary["speed_change"]
    speed = "unknown (table has no reference timing)" if np.isnan(change) else (
        f"reference {summary['reference_now_ms']:.4g} ms now, {summary['reference_built_ms']:.4g} ms at build "
        f"({change:+.1%})")
    return (f"{summary['subnets']} fresh subnets, {summary['rounds']} rounds; {speed}\n"
            f"table as built vs measured:  {_scores(summary, '')}  (search and export predict so)\n"
            f"table rescaled vs measured:  {_scores(summary, 'rescaled_')}  (by the reference's time now)\n"
            f"round vs round (noise):      {_scores(summary, 'noise_')}\n"
            f"measurements repeated because the machine changed speed mid-way: {summary['drift_repeats']}")


def _scores(summary: dict, prefix: str) -> str:
    return (f"within +-10% {summary[prefix + 'within10']:.0%}, MAPE {summary[prefix + 'mape']:.1%}, "
            f"tau {summary[prefix + 'tau']:.2f}, median ratio {summary[prefix + 'median_ratio']:.2f}")
