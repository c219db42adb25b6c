"""int8 subnets for the optional runtimes: OpenVINO quantized by NNCF, ExecuTorch by the XNNPACK quantizer.

Both quantize statically after training, as ONNX Runtime does (:mod:`elasticnas.hardware.quantize`),
with each tool's own defaults for a CNN: NNCF's ``quantize`` (symmetric int8 weights per
channel and activations, fast bias correction), and for ExecuTorch the PT2E flow with
``XNNPACKQuantizer``'s symmetric per-channel configuration. Each quantized model is held as
the bytes of the files an export writes, so the model that is timed, scored and exported is
one and the same.

OpenVINO converts with a free batch size when the calibration batches differ in size from the
example (accuracy, export), else for the example's shape (timing). An ExecuTorch program is
always for the example's shape; scoring a larger batch runs it row block by row block.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from elasticnas.core.run_layout import EXECUTORCH_INT8, OPENVINO_INT8
from elasticnas.hardware.edge_runtimes import (
    executorch_method,
    lowered_to_xnnpack,
    openvino_config,
    openvino_model,
    require,
)


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    """NNCF draws progress bars for every model it quantizes; keep them off the console."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def _rows(batches: Sequence[np.ndarray], rows: int) -> list[np.ndarray]:
    """The calibration images cut into arrays of ``rows`` images (a shorter remainder is left out)."""
    chunks = [np.ascontiguousarray(batch[start:start + rows], dtype=np.float32)
              for batch in batches for start in range(0, len(batch), rows)]
    return [chunk for chunk in chunks if len(chunk) == rows]


def needs_free_batch(example: torch.Tensor, calibration: Sequence[np.ndarray]) -> bool:
    """Whether a quantized graph must take any batch size: some calibration batch differs from the example's."""
    return any(len(batch) != len(example) for batch in calibration)


def openvino_int8_files(model: nn.Module, example: torch.Tensor, calibration: Sequence[np.ndarray]) -> dict:
    """``{file name: bytes}`` of the OpenVINO IR of ``model`` quantized by NNCF on ``calibration``."""
    ov = require("openvino")
    nncf = require("openvino", "nncf")
    dynamic = needs_free_batch(example, calibration)
    converted = openvino_model(model, example, dynamic_batch=dynamic)
    items = _rows(calibration, 1 if dynamic else len(example))
    with _silenced():
        quantized = nncf.quantize(converted, nncf.Dataset(items), subset_size=len(items))
    with tempfile.TemporaryDirectory(prefix="elasticnas-int8-") as folder:
        ov.save_model(quantized, str(Path(folder) / OPENVINO_INT8[1]), compress_to_fp16=False)
        return {name: (Path(folder) / name).read_bytes() for name in OPENVINO_INT8}


class OpenvinoInt8Model:
    """An int8 OpenVINO IR compiled for the CPU: ``model(images)`` gives float32 logits."""

    def __init__(self, files: dict[str, bytes], threads: int | None = None):
        ov = require("openvino")
        core = ov.Core()
        weights, xml = (files[name] for name in OPENVINO_INT8)
        self.compiled = core.compile_model(core.read_model(model=xml, weights=weights), "CPU", openvino_config(threads))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.array(self.compiled([images.detach().cpu().float().numpy()])[0]))

    def runner(self, example: torch.Tensor) -> Callable[[], object]:
        request, feed = self.compiled.create_infer_request(), example.cpu().float().numpy()
        return lambda: request.infer([feed])


def executorch_int8_files(model: nn.Module, example: torch.Tensor, calibration: Sequence[np.ndarray]) -> dict:
    """``{file name: bytes}`` of an XNNPACK program of ``model`` quantized by the XNNPACK quantizer,
    ranges observed on ``calibration`` in blocks of the example's batch size."""
    require("executorch")
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    example = example.cpu()
    with torch.no_grad():
        captured = torch.export.export(model.eval().cpu(), (example,)).module()
        quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
        observed = prepare_pt2e(captured, quantizer)
        for block in _rows(calibration, len(example)):
            observed(torch.from_numpy(block))
        quantized = convert_pt2e(observed)
    return {EXECUTORCH_INT8[0]: lowered_to_xnnpack(quantized, example)}


class ExecutorchInt8Model:
    """An int8 XNNPACK program: ``model(images)`` runs it on blocks of its batch size (the last one
    padded with zeros, whose outputs are dropped: rows do not mix in an inference model)."""

    def __init__(self, files: dict[str, bytes], threads: int | None = None):
        self.method = executorch_method(files[EXECUTORCH_INT8[0]], threads)
        self.rows = int(self.method.method.metadata.input_tensor_meta(0).sizes()[0])

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        outputs = []
        for block in images.detach().cpu().float().split(self.rows):
            padded = torch.cat([block, block.new_zeros((self.rows - len(block), *block.shape[1:]))])
            outputs.append(self.method.execute([padded])[0][:len(block)])
        return torch.cat(outputs)

    def runner(self, example: torch.Tensor) -> Callable[[], object]:
        x = example.cpu().float()
        return lambda: self.method.execute([x])
