"""A fixed reference workload that measures how fast the machine is right now.

A shared VM switches speed modes for seconds at a time, a phone throttles when it warms: a
latency taken at one moment and a latency taken minutes later differ by a factor that has
nothing to do with the models. Timing a small fixed network (a MobileNet-style block: a
strided stem, a 1x1 expansion, a 5x5 depthwise convolution, a 1x1 projection, pooling and a
classifier) on the same device, runtime and thread count just before and just after every
measurement gives that factor: a latency divided by the reference's is in *reference units*,
which stay put when the whole machine speeds up or slows down, and a prediction in reference
units becomes milliseconds again with the reference's current time.

It only cancels slowdowns that hit every workload alike (clock frequency, a slower host). A
process competing for the cores the measurement uses slows multi-threaded models by factors
that depend on their shape; there the reference tells that the machine is disturbed, which is
still worth knowing, but cannot undo it (the latency benchmark in docs/benchmarks.md shows by how much).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from elasticnas.core.errors import ConfigError
from elasticnas.hardware.runtimes import prepare
from elasticnas.hardware.timing import time_runs, torch_threads

REFERENCE_VERSION = 1  # bump when the workload changes: old tables' reference times become incomparable
REFERENCE_INPUT = (3, 64, 64)
REFERENCE_DESCRIPTION = "stem 3x3/2 (24) + MBConv (1x1 x4, 5x5 dw, 1x1 project) + pool + linear, 3x64x64"


def reference_model() -> nn.Module:
    """The reference network: same weights on every machine (seed 0), in eval mode."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(0)
    try:
        width, expanded = 24, 96
        model = nn.Sequential(
            nn.Conv2d(3, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.Hardswish(),
            nn.Conv2d(width, expanded, 1, bias=False), nn.BatchNorm2d(expanded), nn.ReLU(),
            nn.Conv2d(expanded, expanded, 5, 1, 2, groups=expanded, bias=False), nn.BatchNorm2d(expanded), nn.ReLU(),
            nn.Conv2d(expanded, width, 1, bias=False), nn.BatchNorm2d(width),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10),
        )
    finally:
        torch.random.set_rng_state(generator_state)
    return model.eval()


@dataclass
class ReferenceClock:
    """Times the reference workload on one device, runtime, thread count and batch size.

    A reading is the median of ``repeats`` runs of at least ``min_run_ms`` each (so a reading
    spans tens of milliseconds, like the measurements it brackets, rather than catching one
    scheduler slice). :meth:`before` reuses the last reading when it is younger than
    ``reuse_s``: back-to-back measurements share the reading between them.
    """

    runtime: str = "torch"
    device: str = "cpu"
    threads: int | None = None
    batch_size: int = 1
    repeats: int = 5
    min_run_ms: float = 5.0
    reuse_s: float = 0.5
    readings: list[float] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)  # measurements repeated because the reference drifted
    _prepared: object = field(default=None, repr=False)
    _number: int = field(default=0, repr=False)
    _last: tuple[float, float] | None = field(default=None, repr=False)  # (perf_counter, ms)

    def read(self) -> float:
        """Time the reference now (ms per inference)."""
        with torch_threads(self.threads), torch.inference_mode():
            warmup = 2
            if self._prepared is None:
                warmup = 10  # the first calls pay for allocation and kernel selection
                example = torch.randn((self.batch_size, *REFERENCE_INPUT), generator=torch.Generator().manual_seed(0))
                self._prepared = prepare(reference_model(), example, runtime=self.runtime, device=self.device,
                                         threads=self.threads)
                self._number = 0
            samples, self._number = time_runs(self._prepared, self.device, warmup=warmup, repeats=self.repeats,
                                              number=self._number or None, min_run_ms=self.min_run_ms)
        reading = float(np.median(samples))
        self.readings.append(reading)
        self._last = (time.perf_counter(), reading)
        return reading

    def before(self) -> float:
        """The reference just before a measurement: the last reading if it is fresh, else a new one."""
        if self._last is not None and time.perf_counter() - self._last[0] <= self.reuse_s:
            return self._last[1]
        return self.read()

    def typical_ms(self) -> float:
        """Median of all readings so far (the speed this clock saw over its life)."""
        if not self.readings:
            raise ConfigError("the reference clock has no readings yet")
        return float(np.median(self.readings))

    def describe(self) -> dict:
        return {"reference_version": REFERENCE_VERSION, "reference_workload": REFERENCE_DESCRIPTION,
                "reference_runs": self.repeats, "reference_min_run_ms": self.min_run_ms}


def relative_change(new: float, old: float) -> float:
    """``new / old - 1``: +0.2 means 20% slower now."""
    return float(new) / float(old) - 1.0
