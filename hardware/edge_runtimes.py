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
from pathlib import Path

import torch
from torch import nn

from elasticnas.core.errors import ConfigError

EXTRAS = {"openvino": "openvino", "executorch": "executorch"}


def require(runtime: str):
    """The runtime's top-level module, or one line saying which extra installs it."""
    try:
        return importlib.import_module(EXTRAS[runtime])
    except ImportError as error:
        raise ConfigError(f"runtime {runtime!r} is not installed ({error.name} is missing): "
                          f"pip install -e \".[{EXTRAS[runtime]}]\"") from None


def _cpu_only(runtime: str, dev: torch.device) -> None:
    if dev.type != "cpu":
        raise ConfigError(f"runtime {runtime!r} runs on the CPU here; use --device cpu")


def openvino_model(model: nn.Module, example: torch.Tensor):
    """``model`` converted by OpenVINO's PyTorch front end, for ``example``'s shape."""
    ov = require("openvino")
    with torch.no_grad():
        return ov.convert_model(model.eval().cpu(), example_input=example.cpu(),
                                input=[tuple(example.shape)])


def prepare_openvino(model: nn.Module, example: torch.Tensor, dev: torch.device, threads: int | None):
    from elasticnas.hardware.runtimes import Prepared

    ov = require("openvino")
    _cpu_only("openvino", dev)
    config = {"INFERENCE_NUM_THREADS": int(threads)} if threads else {}
    compiled = ov.Core().compile_model(openvino_model(model, example), "CPU", config)
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
    compiled = ov.Core().compile_model(str(path), "CPU")
    return torch.from_numpy(compiled([example.cpu().numpy()])[0])


def executorch_bytes(model: nn.Module, example: torch.Tensor) -> bytes:
    """An ExecuTorch program (``.pte``) of ``model`` with its operators delegated to XNNPACK."""
    require("executorch")
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    with torch.no_grad():
        program = torch.export.export(model.eval().cpu(), (example.cpu(),))
    return to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer


def executorch_method(program: bytes):
    require("executorch")
    from executorch.runtime import Runtime

    return Runtime.get().load_program(program).load_method("forward")


def prepare_executorch(model: nn.Module, example: torch.Tensor, dev: torch.device, threads: int | None):
    from elasticnas.hardware.runtimes import Prepared

    _cpu_only("executorch", dev)
    method = executorch_method(executorch_bytes(model, example))
    x = example.cpu()
    return Prepared(lambda: method.execute([x]), lambda: None)
