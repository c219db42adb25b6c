"""Inference runtimes a model can be timed on: eager torch, TorchScript, ONNX Runtime, and the
optional OpenVINO and ExecuTorch (hardware/edge_runtimes.py).

Each runtime turns a torch module and an example input into a callable that runs one
inference on a tensor already prepared for it (on the right device, as the right type).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from elasticnas.core.errors import ConfigError
from elasticnas.core.registry import Registry
from elasticnas.hardware.edge_runtimes import EXTRAS, prepare_executorch, prepare_openvino, require
from elasticnas.hardware.quantize import random_calibration, require_int8
from elasticnas.hardware.runtime_parts import Prepared, export_onnx_bytes, onnxruntime_session

_DEVICE = re.compile(r"(cpu|cuda)(:[0-9]{1,3})?")


def check_runtime(runtime: str, device: str = "cpu") -> torch.device:
    """Refuse, before any work or any file, an unknown runtime or device, a runtime whose extra is
    not installed, or CUDA where there is none; returns the device."""
    RUNTIMES.get(runtime)
    if runtime in EXTRAS:
        require(runtime)
    return _check_device(device)


def _check_device(device: str) -> torch.device:
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise ConfigError(f"unknown device {device!r}; choose 'cpu', 'cuda' or 'cuda:N'")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but CUDA is not available here; use device='cpu'")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {device!r}; choose 'cpu' or 'cuda'")
    return dev


def _sync(dev: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)


def _prepare_torch(model: nn.Module, example: torch.Tensor, dev: torch.device) -> Prepared:
    model = model.eval().to(dev)
    x = example.to(dev)
    return Prepared(lambda: model(x), _sync(dev))


def _prepare_torchscript(model: nn.Module, example: torch.Tensor, dev: torch.device) -> Prepared:
    x = example.to(dev)
    with torch.no_grad():
        scripted = torch.jit.freeze(torch.jit.script(model.eval().to(dev)))
    return Prepared(lambda: scripted(x), _sync(dev))


def _prepare_onnxruntime(model: nn.Module, example: torch.Tensor, dev: torch.device, threads: int | None) -> Prepared:
    session = onnxruntime_session(export_onnx_bytes(model, example), dev, threads)
    feed = {"input": np.ascontiguousarray(example.cpu().numpy())}
    return Prepared(lambda: session.run(None, feed), lambda: None)


def _prepare_int8(model: nn.Module, example: torch.Tensor, *, runtime: str, dev: torch.device,
                  threads: int | None, quantized_io: bool = False) -> Prepared:
    """``model`` quantized by ``runtime``'s own tool (ranges from seeded random inputs: timing only);
    ``quantized_io``: with 8-bit input and output where the runtime can (see :class:`Int8Format`)."""
    if dev.type != "cpu":
        raise ConfigError(f"int8 subnets are quantized and timed on the CPU here, not on {dev.type!r}; "
                          "use --device cpu")
    found = require_int8(runtime)
    example = example.cpu()
    files = found.quantize(model.eval().cpu(), example, random_calibration(example))
    if quantized_io and found.quantized_io is not None:
        return Prepared(found.quantized_io(files, example, threads), lambda: None)
    return Prepared(found.load(files, threads).runner(example), lambda: None)


# name -> prepare(model, example, device, threads): how to run a model on that runtime
RUNTIMES: Registry[Callable[..., Prepared]] = Registry("runtime")
RUNTIMES.register("torch", lambda model, example, dev, threads: _prepare_torch(model, example, dev))
RUNTIMES.register("torchscript", lambda model, example, dev, threads: _prepare_torchscript(model, example, dev))
RUNTIMES.register("onnxruntime", _prepare_onnxruntime)
RUNTIMES.register("openvino", prepare_openvino)  # pip install -e ".[openvino]"
RUNTIMES.register("executorch", prepare_executorch)  # pip install -e ".[executorch]"
register_runtime = RUNTIMES.register


def prepare(model: nn.Module, example: torch.Tensor, *, runtime: str, device: str,
            threads: int | None = None, precision: int = 32, quantized_io: bool = False) -> Prepared:
    """``model`` ready to run on ``runtime``; ``precision=8`` quantizes it to int8 first
    (``quantized_io``: fed and read as 8-bit tensors, where the runtime can)."""
    prepare_on = RUNTIMES.get(runtime)
    if precision != 32:
        return _prepare_int8(model, example, runtime=runtime, dev=_check_device(device), threads=threads,
                             quantized_io=quantized_io)
    return prepare_on(model, example, _check_device(device), threads)
