"""What every runtime is built from: a prepared model (:class:`Prepared`), a model's ONNX bytes,
and an ONNX Runtime session. Below :mod:`elasticnas.hardware.runtimes`, the optional runtimes
(:mod:`~elasticnas.hardware.edge_runtimes`) and int8 quantization, all of which use them, so
that none of those imports the runtime registry back.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from elasticnas.core.errors import ConfigError


@dataclass(frozen=True)
class Prepared:
    run: Callable[[], object]  # one inference on the prepared input
    synchronize: Callable[[], None]  # waits until the device has finished


def export_onnx_bytes(model: nn.Module, example: torch.Tensor, *, dynamic_batch: bool = False) -> bytes:
    """ONNX (opset 17) bytes of ``model``, exported with the TorchScript-based exporter, or through
    torch.export where that exporter lacks an operator (a decoder's causal mask uses ``aten::diff``)."""
    buffer = io.BytesIO()
    dynamic_axes = {"input": {0: "batch"}, "output": {0: "batch"}} if dynamic_batch else None
    # The TorchScript-based exporter is deprecated in favour of torch.export, but it is
    # fast (per-layer tables export hundreds of graphs) and handles these plain CNNs fully.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, UserWarning, FutureWarning))
        try:
            torch.onnx.export(model.eval().cpu(), (example.cpu(),), buffer, input_names=["input"],
                              output_names=["output"], opset_version=17, dynamic_axes=dynamic_axes, dynamo=False)
        except torch.onnx.errors.UnsupportedOperatorError:
            return _export_onnx_via_torch_export(model, example, dynamic_batch)
    return buffer.getvalue()


def _export_onnx_via_torch_export(model: nn.Module, example: torch.Tensor, dynamic_batch: bool) -> bytes:
    import logging

    shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic_batch else None
    quiet = logging.getLogger("torch.onnx")
    level, quiet.level = quiet.level, logging.ERROR  # it lists every optional operator library it lacks
    try:
        program = torch.onnx.export(model.eval().cpu(), (example.cpu(),), dynamo=True, dynamic_shapes=shapes,
                                    input_names=["input"], output_names=["output"], verbose=False)
    finally:
        quiet.setLevel(level)
    return program.model_proto.SerializeToString()


def onnxruntime_session(onnx_bytes: bytes, dev: torch.device, threads: int | None):
    """An ONNX Runtime inference session of ``onnx_bytes`` on ``dev`` (all graph optimisations)."""
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover - a dependency, but users may trim it
        raise ConfigError("runtime 'onnxruntime' needs the onnxruntime package: pip install onnxruntime") from None
    providers = ["CPUExecutionProvider"]
    if dev.type == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ConfigError(
                "onnxruntime has no CUDA execution provider here (install onnxruntime-gpu); "
                f"available: {ort.get_available_providers()}"
            )
        providers = ["CUDAExecutionProvider"]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    # Idle worker threads that spin keep the cores busy after each run: measurements taken side
    # by side (a layer and the reference workload, two workers) then slow each other by
    # chance, which on a 2-core VM made timings differ by 25% run to run. Sleeping threads
    # cost a wake-up per run and give timings that repeat.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(onnx_bytes, options, providers=providers)
