"""int8 subnets: static post-training quantization by the target runtime's own tool.

A subnet deployed at int8 is the float32 subnet quantized after training, with activation
ranges calibrated on a fixed set of images: for ONNX Runtime by its ``quant_pre_process``
(shape inference and graph optimisation: batch norm folded into the convolutions, whose biases
then quantize; without it the quantized graph ran up to 2x slower than float32 here) and
``quantize_static`` (QDQ format, unsigned 8-bit activations, signed weights per output channel,
min-max ranges; signed activations ran 2-6x slower on this AVX2 CPU). Weights use 7 bits
(``reduce_range``): x86 CPUs without VNNI add pairs of unsigned-by-signed 8-bit products in
16 bits, which saturate; on a one-epoch tiny_mbv3 subnet (digits) 8 bits gave logits off by
up to 8 (of 9) and top classes that agreed with float32 on 66% of images, 7 bits 1.5 and
80%. It is fixed, not chosen per CPU, so a subnet quantizes the same wherever it is measured.
Timing an int8 layer or subnet calibrates on seeded random inputs, which set the scales but
not the speed; measuring accuracy calibrates on training images.

OpenVINO (NNCF) and ExecuTorch (XNNPACK quantizer) quantize in :mod:`elasticnas.hardware.int8_runtimes`;
eager torch and TorchScript have no int8 tool here and are refused by name. Every runtime's
int8 model is a :class:`Int8Format`: the files it is (what an export writes) and the class that
runs them, callable on images and able to give a timing loop.
"""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
import warnings
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from elasticnas.core.errors import ConfigError
from elasticnas.core.registry import Registry
from elasticnas.core.run_layout import EXECUTORCH_INT8, INT8_ONNX, OPENVINO_INT8
from elasticnas.hardware.int8_runtimes import (
    ExecutorchInt8Model,
    OpenvinoInt8Model,
    executorch_int8_files,
    needs_free_batch,
    openvino_int8_files,
)
from elasticnas.hardware.runtime_parts import export_onnx_bytes, onnxruntime_session

CALIBRATION_IMAGES = 256  # training images an int8 subnet's activation ranges are calibrated on
RANDOM_CALIBRATION_INPUTS = 4  # seeded random inputs an int8 model is calibrated on when only timed


def quantize_onnx(onnx_bytes: bytes, calibration: Sequence[np.ndarray], *,
                  only_layers: Collection[int] | None = None) -> bytes:
    """``onnx_bytes`` (one input named ``input``) statically quantized by ONNX Runtime, calibrated on the
    given input batches (each a float32 array the model accepts). ``only_layers``: quantize the
    nodes of these layers of a static subnet alone (layer ``i`` of ``space.layers(arch)``), the
    rest stays float32; by default every node that ONNX Runtime can quantize is."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches: Iterator[np.ndarray] = iter(calibration)

        def get_next(self) -> dict | None:
            batch = next(self._batches, None)
            return None if batch is None else {"input": np.ascontiguousarray(batch, dtype=np.float32)}

    if not len(calibration):
        raise ConfigError("int8 quantization needs at least one calibration batch")
    with tempfile.TemporaryDirectory(prefix="elasticnas-int8-") as folder, _quiet():
        source, prepared, target = (Path(folder) / name for name in ("float32.onnx", "prepared.onnx", "int8.onnx"))
        source.write_bytes(onnx_bytes)
        quant_pre_process(str(source), str(prepared))
        nodes = None if only_layers is None else _name_nodes_of_layers(prepared, set(only_layers))
        quantize_static(str(prepared), str(target), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=True, nodes_to_quantize=nodes,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        extra_options={"CalibTensorRangeSymmetric": False})
        return target.read_bytes()


_LAYER_PREFIX = re.compile(r"^/(\d+)/")  # the exporter names a static subnet's nodes and tensors /<layer>/...


def _name_nodes_of_layers(path: Path, layers: set[int]) -> list[str]:
    """Names (given in place to the nodes that have none) of the nodes of ``path`` that belong to
    ``layers``: a node's layer is the ``/<layer>/`` prefix of its own name, else of the first of its
    outputs, then of its inputs, that has one (unnamed activation steps are known by their tensors)."""
    import onnx

    model = onnx.load(str(path))
    chosen = []
    for i, node in enumerate(model.graph.node):
        node.name = node.name or f"elasticnas_{node.op_type}_{i}"
        found = next((m for m in map(_LAYER_PREFIX.match, [node.name, *node.output, *node.input]) if m), None)
        if found is not None and int(found.group(1)) in layers:
            chosen.append(node.name)
    onnx.save(model, str(path))
    if not chosen and layers:
        raise ConfigError(f"no node of layers {sorted(layers)} in the exported graph; layers run from 0 to the "
                          "subnet's last layer (space.layers(arch))")
    return chosen


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ONNX Runtime's quantization tools log advice on the root logger for every model; keep it off the console."""
    import onnxruntime

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    onnxruntime.set_default_logger_severity(3)  # the pre-processor's own session warns of every folded constant
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)
        onnxruntime.set_default_logger_severity(2)  # ONNX Runtime's default: warnings


def _onnxruntime_int8(model: nn.Module, example: torch.Tensor, calibration: Sequence[np.ndarray]) -> dict:

    dynamic = needs_free_batch(example, calibration)
    return {INT8_ONNX: quantize_onnx(export_onnx_bytes(model, example, dynamic_batch=dynamic), calibration)}


def quantized_io(int8_onnx: bytes) -> bytes:
    """``int8_onnx`` without the QuantizeLinear of its input and the DequantizeLinear of its output,
    where it has them: it then takes and gives the 8-bit tensors that an int8 layer exchanges with
    its neighbours inside an int8 subnet, which converts from and to float32 once, not at every layer."""
    import onnx

    model = onnx.load_from_string(int8_onnx)
    graph = model.graph
    source, sink = graph.input[0], graph.output[0]
    readers = [node for node in graph.node if source.name in node.input]
    if len(readers) == 1 and readers[0].op_type == "QuantizeLinear":
        quantize = readers[0]
        for node in graph.node:
            node.input[:] = [source.name if name == quantize.output[0] else name for name in node.input]
        source.type.tensor_type.elem_type = _zero_point_type(graph, quantize)
        graph.node.remove(quantize)
    writer = next((node for node in graph.node if sink.name in node.output), None)
    producer = None if writer is None else next((n for n in graph.node if writer.input[0] in n.output), None)
    if writer is not None and writer.op_type == "DequantizeLinear" and producer is not None \
            and producer.op_type == "QuantizeLinear":
        for node in graph.node:
            node.input[:] = [sink.name if name == writer.input[0] else name for name in node.input]
        producer.output[0] = sink.name
        sink.type.tensor_type.elem_type = _zero_point_type(graph, writer)
        graph.node.remove(writer)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _zero_point_type(graph, node) -> int:
    """The element type of a (De)QuantizeLinear node's 8-bit side: that of its zero point."""
    return next(t.data_type for t in graph.initializer if t.name == node.input[2])


def _onnxruntime_quantized_io(files: dict[str, bytes], example: torch.Tensor, threads: int | None):
    """One inference of the int8 ONNX model with 8-bit input and output (:func:`quantized_io`), to time."""

    session = onnxruntime_session(quantized_io(files[INT8_ONNX]), torch.device("cpu"), threads)
    kind = session.get_inputs()[0].type  # tensor(uint8) once the input's quantize step is gone
    dtype = {"tensor(uint8)": np.uint8, "tensor(int8)": np.int8}.get(kind, np.float32)
    values = np.random.default_rng(0).integers(0, 128, size=example.shape) if dtype != np.float32 else example
    feed = {"input": np.ascontiguousarray(np.asarray(values).astype(dtype))}
    return lambda: session.run(None, feed)


@dataclass(frozen=True)
class Int8Format:
    """How one runtime quantizes: ``quantize(model, example, calibration) -> {file name: bytes}``,
    and ``load(files, threads)``, the files as a model (``model(images)`` gives float32 logits,
    ``model.runner(example)`` one inference to time). ``quantized_io(files, example, threads)``,
    where the runtime has it, is one inference to time with 8-bit input and output: a layer of an
    int8 latency table as it runs inside an int8 subnet."""

    files: tuple[str, ...]
    quantize: Callable[..., dict[str, bytes]]
    load: Callable[..., Callable[[torch.Tensor], torch.Tensor]]
    quantized_io: Callable[..., Callable[[], object]] | None = None


# runtime -> how it quantizes and runs int8 subnets
QUANTIZERS: Registry[Int8Format] = Registry("int8 quantizer")
QUANTIZERS.register("onnxruntime", Int8Format((INT8_ONNX,), _onnxruntime_int8,
                                              lambda files, threads=None: OnnxInt8Model(files[INT8_ONNX], threads),
                                              _onnxruntime_quantized_io))
QUANTIZERS.register("openvino", Int8Format(OPENVINO_INT8, openvino_int8_files, OpenvinoInt8Model))
QUANTIZERS.register("executorch", Int8Format(EXECUTORCH_INT8, executorch_int8_files, ExecutorchInt8Model))


def require_int8(runtime: str) -> Int8Format:
    """How ``runtime`` quantizes, or one line saying which runtimes can run int8 subnets."""
    if runtime not in QUANTIZERS.names():
        raise ConfigError(f"runtime {runtime!r} cannot run int8 subnets here; int8 is quantized by "
                          f"{QUANTIZERS.names()} (choose one with --runtime, or keep the space at precisions [32])")
    return QUANTIZERS.get(runtime)


def random_calibration(example: torch.Tensor, count: int = RANDOM_CALIBRATION_INPUTS, seed: int = 1) -> list:
    """Seeded standard-normal inputs shaped like ``example``: ranges for timing an int8 model."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(example.shape, generator=generator).numpy() for _ in range(count)]


def image_calibration(images: torch.Tensor, batch_size: int = 64) -> list[np.ndarray]:
    """Calibration batches from (already resized) training images."""
    return [chunk.cpu().float().numpy() for chunk in images.split(batch_size)]


class OnnxInt8Model:
    """An int8 ONNX model run by ONNX Runtime on the CPU: ``model(images)`` gives float32 logits."""

    def __init__(self, onnx_bytes: bytes, threads: int | None = None):

        self.onnx_bytes = onnx_bytes
        self.session = onnxruntime_session(onnx_bytes, torch.device("cpu"), threads)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        feed = {"input": np.ascontiguousarray(images.detach().cpu().float().numpy())}
        return torch.from_numpy(self.session.run(None, feed)[0])

    def runner(self, example: torch.Tensor) -> Callable[[], object]:
        feed = {"input": np.ascontiguousarray(example.cpu().float().numpy())}
        return lambda: self.session.run(None, feed)


def int8_files(model: nn.Module, calibration_images: torch.Tensor, *, runtime: str,
               count: int = CALIBRATION_IMAGES) -> dict[str, bytes]:
    """The float32 ``model`` quantized by ``runtime``'s tool, ranges from the first ``count``
    images, as the files it deploys as; they run any batch size."""
    quantize = require_int8(runtime).quantize
    images = calibration_images[:count].cpu()
    example = images[:1]
    return quantize(model.eval().cpu(), example, [*image_calibration(images), example.numpy()])


def int8_model(model: nn.Module, calibration_images: torch.Tensor, *, runtime: str,
               count: int = CALIBRATION_IMAGES, threads: int | None = None):
    """:func:`int8_files` loaded: callable on images, as ``runtime`` runs it."""
    return require_int8(runtime).load(int8_files(model, calibration_images, runtime=runtime, count=count), threads)


def load_int8(folder: str | Path, runtime: str, threads: int | None = None):
    """The int8 model exported for ``runtime`` into ``folder``."""
    found = require_int8(runtime)
    missing = [name for name in found.files if not (Path(folder) / name).is_file()]
    if missing:
        raise ConfigError(f"{folder} has no int8 model for {runtime!r} (missing {missing}); export the subnet again")
    return found.load({name: (Path(folder) / name).read_bytes() for name in found.files}, threads)


def evaluate_deployed(supernet: nn.Module, arch, data, *, runtime: str):
    """Top-1 and loss of ``arch`` as deployed: the BN-recalibrated subnet, quantized to int8 on
    the run's calibration (training) images when ``arch.precision`` is 8."""
    from elasticnas.supernet.evaluation import calibrated_subnet, evaluate, score

    if arch.precision == 32:
        return evaluate(supernet, arch, data)
    model = calibrated_subnet(supernet, arch, data)
    calibration, images = data.at(arch.resolution, torch.device("cpu"))
    return score(int8_model(model, calibration, runtime=runtime), images, data.labels, data.eval_batch_size)
