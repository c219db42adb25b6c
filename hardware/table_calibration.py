"""Calibrating a lookup table on end-to-end subnets: which subnets, and the line fitted through them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from elasticnas.core.errors import ConfigError
from elasticnas.supernet.arch import Arch
from elasticnas.supernet.space import SearchSpace


def positive_line(raw: np.ndarray, measured: np.ndarray, floor: float) -> dict:
    """``measured ~ slope * raw + intercept`` by least squares, or through the origin where that
    line would predict no time at all for some subnet: one whose raw sum is ``floor`` (the
    table's lower bound) or more. A few noisy calibration subnets can tilt a free line the wrong
    way or make it cross zero above the smallest subnets (seen with 3 subnets timed twice)."""
    slope, intercept = np.polyfit(raw, measured, 1)
    if slope > 0 and slope * floor + intercept > 0:
        return {"slope": float(slope), "intercept": float(intercept), "through_origin": False}
    return {"slope": float(raw @ measured / (raw @ raw)), "intercept": 0.0, "through_origin": True}


def fit_per_precision(archs: Sequence[Arch], raw: np.ndarray, measured: np.ndarray, floor: float) -> dict[str, dict]:
    """A linear fit per precision with at least 2 subnets: an int8 layer timed alone pays the
    quantize and dequantize steps at its borders, which inside a subnet it mostly does not."""
    bits = np.array([arch.precision for arch in archs])
    fits = {}
    for precision in np.unique(bits):
        mine = bits == precision
        if mine.sum() >= 2 and np.ptp(raw[mine]) > 0:
            fits[str(int(precision))] = {**positive_line(raw[mine], measured[mine], floor), "n": int(mine.sum())}
    return fits


def calibration_subnets(space: SearchSpace, resolutions: Sequence[int], n: int, *, seed: int) -> list[Arch]:
    """``n`` distinct random subnets at ``resolutions`` (fewer if the space has fewer), the
    precisions of a space that searches them taking turns, so that each gets its own fit."""
    if n < 0:
        raise ConfigError(f"calibration subnets must be >= 0, got {n}")
    if n == 0:
        return []
    pool = [a for a in space.sample(np.random.default_rng(seed), n=20 * n) if a.resolution in resolutions]
    if space.searches_precision:
        pool = [replace(a, precision=space.precisions[i % len(space.precisions)]) for i, a in enumerate(pool)]
    return list(dict.fromkeys(pool))[:n]
