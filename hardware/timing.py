"""The clock's primitives: the thread count a measurement runs on, and timed runs of a prepared model.

CPU runs are timed with ``time.perf_counter``; CUDA runs with CUDA events after synchronising.
Each timed run covers ``number`` back-to-back inferences and reports their mean. Shared by the
latency measurement (:mod:`elasticnas.hardware.latency`) and the reference workload
(:mod:`elasticnas.hardware.reference`), which therefore need not import each other.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import numpy as np
import torch

from elasticnas.core.errors import ConfigError


def resolved_threads(threads: int | None) -> int:
    """``threads``, or torch's intra-op count when None. Every runtime is given this count, so the
    count a measurement records is the one it ran on: left to themselves, ONNX Runtime, OpenVINO
    and ExecuTorch size their pools by their own rules, which need not give torch's count."""
    if threads is None:
        return torch.get_num_threads()
    if threads < 1:
        raise ConfigError(f"threads must be >= 1, but got {threads}")
    return threads


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` intra-op threads, restoring the previous count afterwards."""
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(resolved_threads(threads))  # which refuses a count below 1
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def time_runs(prepared, device: str, *, warmup: int, repeats: int, number: int | None,
              min_run_ms: float) -> tuple[list[float], int]:
    """``repeats`` timed runs of ``number`` inferences each (ms per inference), and the ``number`` used:
    when None, enough inferences for one run to last ``min_run_ms``."""
    for _ in range(warmup):
        prepared.run()
    prepared.synchronize()
    timer = _time_cuda if torch.device(device).type == "cuda" else _time_cpu
    if number is None:
        single = min(timer(prepared, 1) for _ in range(3))
        number = max(1, int(np.ceil(min_run_ms / max(single, 1e-6))))
    return [timer(prepared, number) for _ in range(repeats)], number


def _time_cpu(prepared, number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        prepared.run()
    return 1e3 * (time.perf_counter() - start) / number


def _time_cuda(prepared, number: int) -> float:  # pragma: no cover - needs a GPU
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(number):
        prepared.run()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / number
