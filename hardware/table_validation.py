"""What a latency table read from a file must hold before it predicts anything: finite, positive
timings and increasing calibration lines, so that an edited table cannot make search see a
subnet at a negative or NaN latency as feasible."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from elasticnas.core.config import require_range
from elasticnas.core.errors import ConfigError


def check_entries(entries: pd.DataFrame, numeric: Sequence[str]) -> None:
    """Timings are finite; a layer's latency (ms and reference units) is above zero."""
    for column in numeric:
        values = entries[column].to_numpy(dtype=float)
        positive = column in ("latency_ms", "latency_units")
        bad = ~np.isfinite(values) | ((values <= 0) if positive else (values < 0))
        if bad.any():
            row = int(bad.argmax())
            raise ConfigError(f"row {row + 1}, column {column!r} holds {values[row]!r}; timings must be finite "
                              f"and {'> 0' if positive else '>= 0'}")


def check_calibration(calibration: dict | None) -> None:
    """A calibration read from a file: increasing lines with finite coefficients."""
    if calibration is None:
        return
    if not isinstance(calibration, dict):
        raise ConfigError(f"field 'calibration' must be an object, got {type(calibration).__name__}")
    by_precision = calibration.get("by_precision") or {}
    if not isinstance(by_precision, dict):
        raise ConfigError("field 'calibration.by_precision' must be an object")
    for name, line in [("calibration", calibration), *((f"calibration.by_precision.{k}", v)
                                                      for k, v in by_precision.items())]:
        if not isinstance(line, dict):
            raise ConfigError(f"field '{name}' must be an object, got {type(line).__name__}")
        require_range(f"{name}.slope", line.get("slope"), above=0)  # latency grows with the layers' sum
        require_range(f"{name}.intercept", line.get("intercept"))


def check_metadata(metadata: dict) -> None:
    """Timing fields read from a file must be positive numbers (or absent: older tables)."""
    for name in ("reference_ms", "call_overhead_ms", "call_overhead_units"):
        value = metadata.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0):
            raise ConfigError(f"latency table field {name!r} must be a number >= 0, got {value!r}")
    if metadata.get("reference_ms") == 0:
        raise ConfigError("latency table field 'reference_ms' must be > 0, got 0")
    for i, measured in enumerate(metadata.get("calibration_measured") or ()):
        if not isinstance(measured, dict):
            raise ConfigError(f"latency table field 'calibration_measured' must hold objects, got {measured!r}")
        for key in ("latency_ms", "latency_units"):
            if measured.get(key) is not None:
                require_range(f"calibration_measured[{i}].{key}", measured[key], above=0)
    if not isinstance(metadata.get("normalised", False), bool):
        raise ConfigError(f"latency table field 'normalised' must be true or false, got {metadata['normalised']!r}")


def check_positive(calibration: dict | None, floor_ms: float, scale: float) -> None:
    """Refuse a calibration that would predict no time, or less, for some subnet of the space:
    every subnet's raw sum is at least ``floor_ms`` (the table's lower bound), and the lines increase."""
    if not calibration:
        return
    for line in [calibration, *(calibration.get("by_precision") or {}).values()]:
        if not line["slope"] * floor_ms + line["intercept"] * scale > 0:
            raise ConfigError(f"calibration (slope {line['slope']:.4g}, intercept {line['intercept']:.4g}) predicts "
                              f"a non-positive latency for the fastest subnets; rebuild the table with "
                              f"`elasticnas profile`")
