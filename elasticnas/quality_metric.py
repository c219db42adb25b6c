"""What "most accurate" means in a run: the measured figure its predictor learns and its search optimises.

An image run measures validation top-1 (percent, higher is better); a language model run
validation bits per byte (lower is better: the cross-entropy of the next byte, in bits). Every
stage that ranks subnets on quality (measure, fit, search, the accuracy check, exports, slice
tables) asks :func:`quality_of` for the column and the direction, never assumes top-1.

>>> quality_of(create_space("tiny_gpt", num_classes=256)).column  # doctest: +SKIP
'val_bits_per_byte'
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class QualityMetric:
    column: str  # the evaluations.csv column the accuracy predictor learns
    objective: str  # the search's objective (its column in archive.csv)
    maximize: bool
    label: str  # in sentences: "validation top-1"
    unit: str  # after a value: "%"
    digits: int  # decimals worth printing
    short: str  # "top-1"
    difference_unit: str  # of a difference or a standard error: "points"
    samples: str  # what the validation data is made of: "images"
    report_kind: str  # for predictors.quality_report: "accuracy" (±1 point) or "bits" (±0.05 bits)
    result_fields: tuple[str, str, str] = ("top1", "top1_se", "top1_halves")  # of an EvalResult
    test_column: str = "test_top1"  # an export report's figure on the test split

    def format(self, value: float) -> str:
        return f"{value:.{self.digits}f}{self.unit}"

    def best(self, values) -> float:
        """The best of ``values`` (-inf/+inf, the worst possible, when there are none)."""
        values = np.asarray(values, dtype=np.float64)
        if not len(values):
            return float("-inf") if self.maximize else float("inf")
        return float(values.max() if self.maximize else values.min())

    def better(self, value: float, than: float) -> bool:
        return value > than if self.maximize else value < than

    @property
    def beyond(self) -> str:
        """The side of a value that is better: "above" or "below"."""
        return "above" if self.maximize else "below"

    @property
    def noise_columns(self) -> tuple[str, str, str]:
        """Its standard error and its value on each half of the validation data."""
        return f"{self.column}_se", f"{self.column}_half_a", f"{self.column}_half_b"

    def of_row(self, row) -> float:
        """The metric of one measured subnet (a journal row as a dict or a whole journal): a language
        model's journal written before bits per byte were recorded (2026-12-03) holds its mean
        loss per token in nats, from which they follow exactly."""
        if self.column in row:
            return row[self.column]
        if self.column == "val_bits_per_byte" and "val_loss" in row:
            return row["val_loss"] / math.log(2)
        raise KeyError(f"a measured subnet without {self.column}")

    def columns_of(self, result) -> dict[str, float]:
        """The metric and its noise columns from an :class:`~elasticnas.supernet.evaluation.EvalResult`."""
        value, se, halves = (getattr(result, name) for name in self.result_fields)
        return dict(zip((self.column, *self.noise_columns), (value, se, *halves), strict=True))


TOP1 = QualityMetric("val_top1", "accuracy", True, "validation top-1", "%", 2, "top-1", "points", "images",
                    "accuracy")
BITS_PER_BYTE = QualityMetric("val_bits_per_byte", "bits_per_byte", False, "validation bits per byte",
                              " bits per byte", 3, "bits per byte", "bits per byte", "windows", "bits",
                              ("bits", "bits_se", "bits_halves"), "test_bits_per_byte")


def quality_of(space) -> QualityMetric:
    """The run's quality metric, from its space's modality."""
    return BITS_PER_BYTE if getattr(space, "modality", "image") == "text" else TOP1
