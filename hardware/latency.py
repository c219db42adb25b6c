"""Latency measurement of a model on a real runtime and device.

CPU runs are timed with ``time.perf_counter`` under an explicit thread count; CUDA runs
with CUDA events after synchronising. Everything runs under ``torch.inference_mode()``.
Each timed run covers ``number`` back-to-back inferences and reports their mean: layers of
tens of microseconds cannot be timed one call at a time without the timer's own jitter
dominating. By default ``number`` is chosen so that one run lasts about a millisecond.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from elasticnas.core.errors import ConfigError
from elasticnas.hardware.reference import ReferenceClock
from elasticnas.hardware.runtime_parts import Prepared
from elasticnas.hardware.runtimes import prepare
from elasticnas.hardware.timing import resolved_threads, time_runs, torch_threads


@dataclass(frozen=True)
class LatencyResult:
    """Summary of repeated timings, in milliseconds, with the settings that produced them."""

    median_ms: float
    mean_ms: float
    trimmed_mean_ms: float  # mean of the runs between the 10th and 90th percentile
    p10_ms: float
    p90_ms: float
    std_ms: float
    runs: int
    settings: dict = field(default_factory=dict)
    reference_ms: float | None = None  # the reference workload's time around this measurement
    reference_drift: float | None = None  # relative change of the reference from just before to just after
    retries: int = 0  # repeats because the reference drifted beyond the allowed margin

    @property
    def ratio(self) -> float:
        """Median latency in reference units (see :mod:`elasticnas.hardware.reference`)."""
        if self.reference_ms is None:
            raise ConfigError("this latency was measured without a reference clock; pass reference=...")
        return self.median_ms / self.reference_ms

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float], settings: dict | None = None, **reference) -> LatencyResult:
        values = np.sort(np.asarray(samples_ms, dtype=float))
        if values.size == 0:
            raise ConfigError("no timings to summarise: repeats must be >= 1")
        p10, p90 = np.percentile(values, [10, 90])
        inner = values[(values >= p10) & (values <= p90)]
        return cls(
            median_ms=float(np.median(values)),
            mean_ms=float(values.mean()),
            trimmed_mean_ms=float(inner.mean() if inner.size else values.mean()),
            p10_ms=float(p10),
            p90_ms=float(p90),
            std_ms=float(values.std()),
            runs=int(values.size),
            settings=dict(settings or {}),
            **reference,
        )

    def to_dict(self) -> dict:
        return asdict(self)


def measure_latency(
    model: nn.Module | None,
    *,
    input_shape: Sequence[int],
    batch_size: int = 1,
    device: str = "cpu",
    runtime: str = "torch",
    threads: int | None = None,
    warmup: int = 10,
    repeats: int = 50,
    number: int | None = None,
    min_run_ms: float = 1.0,
    seed: int = 0,
    reference: ReferenceClock | None = None,
    max_drift: float = 0.1,
    max_retries: int = 2,
    precision: int = 32,
    prepared: Prepared | None = None,
) -> LatencyResult:
    """Time single inferences of ``model`` on ``runtime`` and ``device``.

    ``input_shape`` excludes the batch dimension, e.g. ``(3, 224, 224)``. ``threads=None`` runs
    every runtime on torch's intra-op thread count, the count recorded in the settings. With a
    ``reference`` clock (same runtime, device and threads) the reference workload is timed
    just before and just after; when it moved by more than ``max_drift`` (relative) in
    between, the machine changed speed mid-measurement and the measurement is repeated, at
    most ``max_retries`` times (each repeat is recorded in ``reference.events``; the attempt
    with the steadiest reference is kept). ``precision=8`` times the model after the runtime's
    static int8 quantization (:mod:`elasticnas.hardware.quantize`). ``prepared`` (from
    :func:`prepare_for_timing` with the same settings) times that instead of preparing
    ``model`` again (``model`` may then be None): converting or lowering a model can take far
    longer than timing it.

    >>> from torch import nn
    >>> result = measure_latency(nn.Conv2d(3, 8, 3), input_shape=(3, 32, 32), repeats=5, warmup=1)
    >>> result.runs
    5
    """
    if batch_size < 1 or repeats < 1 or warmup < 0 or (number is not None and number < 1):
        raise ConfigError(f"need batch_size >= 1, repeats >= 1, warmup >= 0, number >= 1; "
                          f"got {batch_size=}, {repeats=}, {warmup=}, {number=}")
    if model is None and prepared is None:
        raise ConfigError("measure_latency needs a model to time, or one made ready by prepare_for_timing "
                          "(prepared=...)")
    if max_drift <= 0 or max_retries < 0:
        raise ConfigError(f"need max_drift > 0 and max_retries >= 0; got {max_drift=}, {max_retries=}")
    shape = (batch_size, *(int(s) for s in input_shape))
    threads = resolved_threads(threads)
    settings = {"runtime": runtime, "device": device, "threads": threads,
                "batch_size": batch_size, "input_shape": list(shape[1:]), "warmup": warmup, "repeats": repeats,
                "precision": precision}
    with torch_threads(threads), torch.inference_mode():
        if prepared is None:
            prepared = prepare_for_timing(model, input_shape=shape[1:], batch_size=batch_size, device=device,
                                          runtime=runtime, threads=threads, precision=precision, seed=seed)
        if reference is None:
            samples, number = time_runs(prepared, device, warmup=warmup, repeats=repeats, number=number,
                                        min_run_ms=min_run_ms)
            settings["number"] = number
            return LatencyResult.from_samples(samples, settings)
        best = None
        for attempt in range(max_retries + 1):
            before = reference.before()
            samples, number = time_runs(prepared, device, warmup=warmup if attempt == 0 else 1, repeats=repeats,
                                        number=number, min_run_ms=min_run_ms)
            after = reference.read()
            drift = abs(after - before) / min(after, before)
            if best is None or drift < best[0]:
                best = (drift, samples, (before + after) / 2)
            if drift <= max_drift:
                break
            reference.events.append({"before_ms": before, "after_ms": after, "drift": drift, "attempt": attempt})
    settings["number"] = number
    drift, samples, reference_ms = best
    return LatencyResult.from_samples(samples, settings, reference_ms=reference_ms, reference_drift=drift,
                                      retries=attempt)


def prepare_for_timing(model: nn.Module, *, input_shape: Sequence[int], batch_size: int = 1, device: str = "cpu",
                       runtime: str = "torch", threads: int | None = None, precision: int = 32,
                       seed: int = 0, quantized_io: bool = False, example: torch.Tensor | None = None) -> Prepared:
    """``model`` made ready to time as :func:`measure_latency` would with these settings, to time
    it several times (``measure_latency(..., prepared=...)``) for the cost of one conversion.
    ``quantized_io``: an int8 model is fed and read as 8-bit tensors where the runtime can, as an
    int8 layer runs inside an int8 subnet (latency tables time their int8 layers so). ``example``
    (batch first) replaces the random normal input of ``input_shape``: token ids, for a text model."""
    if example is None:
        example = torch.randn((batch_size, *(int(s) for s in input_shape)),
                              generator=torch.Generator().manual_seed(seed))
    threads = resolved_threads(threads)
    with torch_threads(threads), torch.inference_mode():
        return prepare(model, example, runtime=runtime, device=device, threads=threads, precision=precision,
                       quantized_io=quantized_io)


def measure_archs(space, archs: Sequence, *, runtime: str = "torch", device: str = "cpu", batch_size: int = 1,
                  threads: int | None = None, warmup: int = 10, repeats: int = 30, rounds: int = 3,
                  progress: bool = False, models: Sequence[nn.Module] | None = None,
                  per_round: bool = False, reference: ReferenceClock | None = None,
                  keep_prepared_mb: float = 256.0) -> np.ndarray:
    """End-to-end median latency (ms) of each architecture's static model.

    Weights do not change latency, so fresh builds are timed unless ``models`` (e.g.
    extracted, trained subnets) are given. All architectures are measured in ``rounds``
    passes and each gets the smallest of its per-round medians: a shared machine switches
    between speed modes for seconds at a time, and the minimum tracks its undisturbed
    speed (as latency tables do). ``per_round=True`` returns the ``(rounds, len(archs))``
    matrix of medians instead, to judge reproducibility.

    With a ``reference`` clock every subnet is timed between two readings of the reference
    workload and the values are in *reference units* (latency / reference time; speed modes
    cancel, so rounds are merged by their median, not their minimum).

    Each subnet is converted for ``runtime`` once and timed in every round, while the
    converted subnets kept hold at most ``keep_prepared_mb`` of weights (counted as the
    torch model's parameters and buffers); beyond that, subnets are converted again each
    round, so a space of large subnets does not hold hundreds of sessions in memory.
    """
    from tqdm.auto import tqdm

    samples = np.zeros((rounds, len(archs)))
    threads = resolved_threads(threads)
    kept, room = {}, keep_prepared_mb * 2**20
    bar = tqdm(total=rounds * len(archs), disable=not progress, desc=f"measuring ({runtime})", unit="subnet")
    for round_index in range(rounds):
        for i, arch in enumerate(archs):
            ready, shape = kept.get(i, (None, None))
            if ready is None:
                example = space.example_input(arch, batch_size, torch.Generator().manual_seed(0))
                shape = tuple(example.shape[1:])
                model = space.timing_model(arch, models[i] if models is not None else None)
                ready = prepare_for_timing(model, input_shape=shape, batch_size=batch_size, device=device,
                                           runtime=runtime, threads=threads, precision=arch.precision,
                                           example=example)
                size = _weight_bytes(model)
                if round_index < rounds - 1 and size <= room:
                    kept[i], room = (ready, shape), room - size
            result = measure_latency(
                None, input_shape=shape, batch_size=batch_size, device=device, runtime=runtime, threads=threads,
                warmup=warmup, repeats=repeats, reference=reference, precision=arch.precision, prepared=ready)
            samples[round_index, i] = result.median_ms if reference is None else result.ratio
            bar.update()
    bar.close()
    if per_round:
        return samples
    return samples.min(axis=0) if reference is None else np.median(samples, axis=0)


def _weight_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
