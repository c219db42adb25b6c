"""Deployment runtimes that come as optional extras: OpenVINO (Intel CPUs) and ExecuTorch (XNNPACK).

Both are registered whether or not they are installed, so the command line lists them; using
one that is missing gives one line naming the extra to install. Each also writes its own file
format for export (``openvino_files``, ``executorch_bytes``). Models are converted for a fixed
input shape, the example's: time and export them at the batch size you deploy.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from elasticnas.core.errors import ConfigError
from elasticnas.hardware.runtime_parts import Prepared, export_onnx_bytes

EXTRAS = {"openvino": "openvino", "executorch": "executorch"}  # runtime -> the extra that installs it
# OpenVINO computes in bfloat16 by default on CPUs with AMX or AVX512-BF16 (Sapphire Rapids
# on): a float32 subnet is timed and checked as float32, on every CPU alike.
FLOAT32 = {"INFERENCE_PRECISION_HINT": "f32"}


def openvino_config(threads: int | None) -> dict:
    """OpenVINO CPU settings: float32 inference, and the thread count when one is given."""
    return {**FLOAT32, **({"INFERENCE_NUM_THREADS": int(threads)} if threads else {})}


def require(runtime: str, module: str | None = None):
    """The runtime's top-level module (or ``module``, a tool its extra installs), or one line
    saying which extra installs it."""
    try:
        return importlib.import_module(module or EXTRAS[runtime])
    except ImportError as error:
        raise ConfigError(f"runtime {runtime!r} is not installed ({error.name} is missing): "
                          f"pip install -e \".[{EXTRAS[runtime]}]\"") from None


def _cpu_only(runtime: str, dev: torch.device) -> None:
    if dev.type != "cpu":
        raise ConfigError(f"runtime {runtime!r} runs on the CPU here; use --device cpu")


def openvino_model(model: nn.Module, example: torch.Tensor, *, dynamic_batch: bool = False):
    """``model`` read by OpenVINO from its ONNX export, for ``example``'s shape (any batch size with
    ``dynamic_batch``). OpenVINO's PyTorch front end builds the same graph, equally fast to run,
    but converting and compiling a small CNN subnet (12-18 layers) took 1.2-1.6 s that way against 0.2-0.3 s
    through ONNX, and a latency table converts hundreds of layers."""

    ov = require("openvino")
    return ov.Core().read_model(export_onnx_bytes(model, example, dynamic_batch=dynamic_batch))


def prepare_openvino(model: nn.Module, example: torch.Tensor, dev: torch.device, threads: int | None):

    ov = require("openvino")
    _cpu_only("openvino", dev)
    compiled = ov.Core().compile_model(openvino_model(model, example), "CPU", openvino_config(threads))
    request = compiled.create_infer_request()
    feed = example.cpu().numpy()
    return Prepared(lambda: request.infer([feed]), lambda: None)


def openvino_files(model: nn.Module, example: torch.Tensor, out: Path, stem: str = "model") -> list[str]:
    """Write ``stem.xml`` and ``stem.bin`` into ``out``, each renamed into place when whole."""
    ov = require("openvino")
    converted = openvino_model(model, example)
    with tempfile.TemporaryDirectory(dir=out) as staging:
        ov.save_model(converted, str(Path(staging) / f"{stem}.xml"), compress_to_fp16=False)
        names = [f"{stem}.bin", f"{stem}.xml"]  # the weights first: an .xml is whole only with its .bin
        for name in names:
            os.replace(Path(staging) / name, out / name)
    return names


def run_openvino_file(path: Path, example: torch.Tensor) -> torch.Tensor:
    ov = require("openvino")
    compiled = ov.Core().compile_model(str(path), "CPU", FLOAT32)
    return torch.from_numpy(compiled([example.cpu().numpy()])[0])


def executorch_bytes(model: nn.Module, example: torch.Tensor) -> bytes:
    """An ExecuTorch program (``.pte``) of ``model`` with its operators delegated to XNNPACK."""
    require("executorch")
    return lowered_to_xnnpack(model.eval().cpu(), example)


def lowered_to_xnnpack(module: nn.Module, example: torch.Tensor) -> bytes:
    """``module`` (already in eval mode: a quantized graph cannot be switched) captured by
    torch.export for ``example``'s shape and lowered to an XNNPACK-delegated program."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    with torch.no_grad():
        program = torch.export.export(module, (example.cpu(),))
    return to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer


class _ExecutorchPool:
    """ExecuTorch's one thread pool per process, and how many times this module has resized it.

    XNNPACK takes the pool when a method is loaded and keeps it; resizing destroys that pool
    (a resize to its own size does nothing). So the pool is resized only before a load, and a
    method loaded before a resize is refused rather than run on a destroyed pool.
    """

    resizes = 0
    _count = None  # ExecuTorch's reader of the pool size, imported once: methods check it every run

    @classmethod
    def size(cls) -> int:
        if cls._count is None:
            from executorch.extension.pybindings.portable_lib import _threadpool_get_thread_count

            cls._count = _threadpool_get_thread_count
        return int(cls._count())

    @classmethod
    def resize(cls, threads: int | None) -> tuple[int, int]:
        """Resize to ``threads`` (None: as it is, one thread per processor unless resized);
        returns ``(resizes, size)``, what a method loaded now depends on."""
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

        if threads and int(threads) != cls.size():
            _unsafe_reset_threadpool(int(threads))
            cls.resizes += 1
        return cls.resizes, cls.size()


@dataclass(frozen=True, eq=False)
class ExecutorchMethod:
    """A loaded ``forward`` together with the program and bytes it was loaded from.

    ExecuTorch reads a program's instructions from the caller's buffer on every call, without a
    copy, and its method does not keep that buffer alive: a method whose program and bytes were
    collected runs on freed memory (a segmentation fault, or garbage, once the memory is reused).
    ``pool`` is the thread pool it was loaded with (see :class:`_ExecutorchPool`).
    """

    program_bytes: bytes = field(repr=False)
    program: Any
    method: Any
    pool: tuple[int, int]

    def execute(self, inputs: Sequence[torch.Tensor]) -> Sequence[Any]:
        if (_ExecutorchPool.resizes, _ExecutorchPool.size()) != self.pool:
            raise RuntimeError(f"this ExecuTorch method was loaded with a pool of {self.pool[1]} threads, which "
                               f"was resized since (now {_ExecutorchPool.size()}): load the program again")
        return self.method.execute(inputs)


def executorch_method(program_bytes: bytes, threads: int | None = None) -> ExecutorchMethod:
    """``forward`` of a ``.pte`` program, its XNNPACK operators run on ``threads`` threads (the
    process-wide pool is resized to that first; None leaves it as it is)."""
    require("executorch")
    from executorch.runtime import Runtime

    pool = _ExecutorchPool.resize(threads)
    program = Runtime.get().load_program(program_bytes)
    return ExecutorchMethod(program_bytes, program, program.load_method("forward"), pool)


def prepare_executorch(model: nn.Module, example: torch.Tensor, dev: torch.device, threads: int | None):

    _cpu_only("executorch", dev)
    method = executorch_method(executorch_bytes(model, example), threads)
    x = example.cpu()
    return Prepared(lambda: method.execute([x]), lambda: None)
