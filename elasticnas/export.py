"""A chosen subnet as a standalone model: data, not code.

    DIR/arch.json              supernet name, the space's config and fingerprint, the canonical
                               architecture, input shape, package version
    DIR/weights.safetensors    the static model's weights with BN recalibrated for this subnet
    DIR/model.pt2              a torch.export program, dynamic batch (optional; load it with
                               torch.export.load, which unpickles: only files you made)
    DIR/model.onnx             ONNX opset 17, dynamic batch (optional)
    DIR/model.torchscript.pt   traced TorchScript (only when asked, while torch still has it)
    DIR/model.xml, model.bin   OpenVINO IR, batch 1 (optional extra ``openvino``)
    DIR/model.pte              ExecuTorch program delegated to XNNPACK, batch 1 (extra ``executorch``)
    DIR/model.int8.*           for a subnet deployed at int8: the int8 runtime's own static int8
                               model, ranges calibrated on training images: model.int8.onnx (ONNX
                               Runtime, any batch), model.int8.xml/.bin (OpenVINO, any batch) or
                               model.int8.pte (ExecuTorch, batch 1); arch.json names the runtime

``load_subnet(DIR)`` rebuilds the model from arch.json and the safetensors weights alone:
no pickle, no supernet checkpoint.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from elasticnas.core.atomic import atomic_write_bytes, atomic_write_json
from elasticnas.core.checksums import sha256_bytes, sha256_file
from elasticnas.core.errors import ConfigError
from elasticnas.core.files import CorruptFileError, read_json, reading
from elasticnas.core.run_layout import (
    ARCH_JSON,
    EXECUTORCH_PROGRAM,
    ONNX,
    OPENVINO_FILES,
    PROGRAM,
    TORCHSCRIPT,
    WEIGHTS,
)
from elasticnas.core.staging import staged_folder
from elasticnas.hardware.quantize import load_int8, require_int8
from elasticnas.hardware.runtime_parts import export_onnx_bytes
from elasticnas.supernet.arch import Arch
from elasticnas.supernet.catalogue import space_from_config
from elasticnas.supernet.evaluation import score
from elasticnas.supernet.space import SearchSpace
from elasticnas.supernet.static import build_static

# TorchScript is deprecated in torch; torch.export is its successor, so it is the default compiled format.
FORMATS = ("safetensors", "torch_export", "onnx")
KNOWN_FORMATS = (*FORMATS, "torchscript", "openvino", "executorch")
FILES = {"torch_export": [PROGRAM], "onnx": [ONNX], "torchscript": [TORCHSCRIPT],
         "openvino": list(OPENVINO_FILES), "executorch": [EXECUTORCH_PROGRAM]}
# Relative to the largest output magnitude: runtimes fuse and reorder float32 sums differently, so
# absolute differences grow with the logits' scale while relative ones stay near 1e-6.
RELATIVE_TOLERANCE = 1e-4


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("elasticnas")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def parse_formats(formats: str | Sequence[str]) -> tuple[str, ...]:
    chosen = tuple(f.strip() for f in (formats.split(",") if isinstance(formats, str) else formats) if f.strip())
    bad = [f for f in chosen if f not in KNOWN_FORMATS]
    if bad or "safetensors" not in chosen:
        raise ConfigError(f"formats {list(chosen)} must include 'safetensors' and name only {list(KNOWN_FORMATS)}")
    from elasticnas.hardware.edge_runtimes import EXTRAS, require

    for name in set(chosen) & set(EXTRAS):  # before anything is written
        require(name)
    if "torchscript" in chosen and not hasattr(torch.jit, "trace"):
        raise ConfigError(f"this torch ({torch.__version__}) no longer has TorchScript; use 'torch_export'")
    return chosen


def export_subnet(model: nn.Module, space: SearchSpace, arch: Arch, out: str | Path, *,
                  formats: str | Sequence[str] = FORMATS, seed: int = 0,
                  calibration_images: torch.Tensor | None = None, int8_runtime: str = "onnxruntime") -> dict:
    """Write the static ``model`` of ``arch`` (e.g. ``calibrated_subnet(supernet, arch, data)``)
    into ``out`` whole: built beside it and renamed into place once every format is written and
    checked; a previous export in ``out`` is replaced whole (see :func:`write_export`)."""
    with staged_folder(out, marker=ARCH_JSON) as stage:
        return write_export(model, space, arch, stage, formats=formats, seed=seed,
                            calibration_images=calibration_images, int8_runtime=int8_runtime)


def write_export(model: nn.Module, space: SearchSpace, arch: Arch, out: str | Path, *,
                 formats: str | Sequence[str] = FORMATS, seed: int = 0,
                 calibration_images: torch.Tensor | None = None, int8_runtime: str = "onnxruntime") -> dict:
    """Write the static ``model`` of ``arch`` into the folder ``out`` as it is (a staging folder:
    see :func:`elasticnas.core.staging.staged_folder`).

    Every float32 format is checked against the torch model on a seeded batch; returns the
    largest absolute output difference per format and the files written. An int8 ``arch``
    also gets ``int8_runtime``'s int8 model (e.g. :data:`INT8_ONNX`), quantized with ranges from
    ``calibration_images`` (training images at the subnet's resolution); the written files must
    reproduce the quantized model they were saved from, and its difference from float32 is
    reported, not bounded (the accuracy drop is the measure of it: see
    :func:`elasticnas.pipeline.export_from_run`).
    """
    formats = parse_formats(formats)
    int8 = arch.precision != 32
    if int8:
        require_int8(int8_runtime)
    if int8 and calibration_images is None:
        raise ConfigError("an int8 subnet is exported with calibration_images (training images at its resolution) "
                          "for the quantizer's activation ranges")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    arch = space.canonical(arch)
    model = model.eval().cpu()
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    weights = save_safetensors(state, metadata={"arch": arch.to_json(), "space_fingerprint": space.fingerprint})
    atomic_write_json(out / ARCH_JSON, {
        "supernet": space.name, "family": space.family, "space_fingerprint": space.fingerprint,
        "space": space.to_config(), "arch": arch.to_dict(), "arch_ofa": space.to_foreign_dict(arch),
        "input_shape": list(space.example_input(arch).shape[1:]), "num_classes": space.num_classes,
        "elasticnas_version": package_version(), "torch_version": torch.__version__,
        **({"int8_runtime": int8_runtime} if int8 else {}), "weights_sha256": sha256_bytes(weights),
    })
    atomic_write_bytes(out / WEIGHTS, weights)
    example = space.example_input(arch, 2, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        reference = model(example).numpy()
    differences = {}
    if "torch_export" in formats:
        program = export_program(model, example)
        buffer = io.BytesIO()
        torch.export.save(program, buffer)
        atomic_write_bytes(out / PROGRAM, buffer.getvalue())
        with torch.no_grad():
            differences["torch_export"] = float(np.abs(program.module()(example).numpy() - reference).max())
    if "torchscript" in formats:
        with torch.no_grad():
            traced = torch.jit.trace(model, example[:1])
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)
        atomic_write_bytes(out / TORCHSCRIPT, buffer.getvalue())
        loaded = torch.jit.load(str(out / TORCHSCRIPT))
        with torch.no_grad():
            differences["torchscript"] = float(np.abs(loaded(example).numpy() - reference).max())
    if "onnx" in formats:
        import onnxruntime as ort

        atomic_write_bytes(out / ONNX, export_onnx_bytes(model, example[:1], dynamic_batch=True))
        session = ort.InferenceSession(str(out / ONNX), providers=["CPUExecutionProvider"])
        differences["onnx"] = float(np.abs(session.run(None, {"input": example.numpy()})[0] - reference).max())
    differences.update(_edge_formats(model, example, reference, formats, out))
    foreign = space.foreign_files(arch, state)
    for name, data in foreign.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / name, data)
    scale = max(1.0, float(np.abs(reference).max()))
    relative = {k: v / scale for k, v in differences.items()}
    worst = {k: v for k, v in relative.items() if v > RELATIVE_TOLERANCE}
    if worst:
        raise ConfigError(f"exported formats disagree with the torch model: largest difference relative to the "
                          f"largest output {worst}, allowed {RELATIVE_TOLERANCE}")
    files = [ARCH_JSON, WEIGHTS, *[name for f in formats for name in FILES.get(f, [])], *foreign]
    written = {"max_abs_difference": differences, "max_relative_difference": relative}
    if int8:
        written.update(_int8_files(model, calibration_images, out, int8_runtime))
        files.extend(require_int8(int8_runtime).files)
    return {**written, "files": {f: (out / f).stat().st_size for f in files},
            "sha256": {f: sha256_file(out / f) for f in files}}


def _int8_files(model: nn.Module, calibration_images: torch.Tensor, out: Path, runtime: str) -> dict:
    """Write ``runtime``'s int8 model, check that the files reproduce it, and compare it with float32
    on the calibration images (real inputs: random ones fall outside the calibrated ranges)."""
    from elasticnas.hardware.quantize import CALIBRATION_IMAGES, int8_files, load_int8

    files = int8_files(model, calibration_images, runtime=runtime)
    for name, data in files.items():
        atomic_write_bytes(out / name, data)
    images = calibration_images[:CALIBRATION_IMAGES].cpu()
    produced = require_int8(runtime).load(files)(images)
    reread = load_int8(out, runtime)(images)
    if not torch.equal(reread, produced):
        raise ConfigError(f"the int8 files in {out} do not reproduce the int8 model they were written from "
                          f"(largest difference {(reread - produced).abs().max():.3g})")
    with torch.no_grad():
        reference = model(images)
    scale = max(1.0, float(reference.abs().max()))
    return {"int8_runtime": runtime,
            "int8_vs_float32_max_relative_difference": float((produced - reference).abs().max()) / scale,
            "int8_agrees_with_float32": float((produced.argmax(1) == reference.argmax(1)).float().mean())}


def _edge_formats(model: nn.Module, example: torch.Tensor, reference: np.ndarray, formats, out: Path) -> dict:
    """The optional runtimes' own files, converted for one image at a time, each run on the first image."""
    from elasticnas.hardware import edge_runtimes

    differences = {}
    one = example[:1]
    if "openvino" in formats:
        edge_runtimes.openvino_files(model, one, out)
        produced = edge_runtimes.run_openvino_file(out / OPENVINO_FILES[0], one)
        differences["openvino"] = float(np.abs(produced.numpy() - reference[:1]).max())
    if "executorch" in formats:
        atomic_write_bytes(out / EXECUTORCH_PROGRAM, edge_runtimes.executorch_bytes(model, one))
        produced = edge_runtimes.executorch_method((out / EXECUTORCH_PROGRAM).read_bytes()).execute([one])[0]
        differences["executorch"] = float(np.abs(produced.numpy() - reference[:1]).max())
    return differences


def export_program(model: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    """``model`` as a torch.export program whose batch size is free (``example`` has 2 or more rows:
    torch.export fixes a dimension it sees as 1)."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    with torch.no_grad():
        return torch.export.export(model.eval(), (example,), dynamic_shapes=({0: batch},))


def int8_runtime_of(folder: str | Path) -> str:
    """The runtime whose int8 model an export holds (exports from before OpenVINO and ExecuTorch
    quantized hold ONNX Runtime's)."""
    return read_json(Path(folder) / ARCH_JSON, "exported architecture file", fields=()).get("int8_runtime",
                                                                                            "onnxruntime")


def read_arch_json(folder: str | Path) -> tuple[SearchSpace, Arch, dict]:
    path = Path(folder) / ARCH_JSON
    if not path.is_file():
        raise FileNotFoundError(f"no {ARCH_JSON} in {folder}; export a subnet there with `elasticnas export`")
    what = "exported architecture file"
    with reading(path, what):
        data = read_json(path, what, fields=("space", "space_fingerprint", "arch"))
        space = space_from_config(data["space"])
        if space.fingerprint != data["space_fingerprint"]:
            raise ConfigError(f"{path} is inconsistent: its space does not match its fingerprint")
        return space, space.canonical(data["arch"]), data


def load_subnet(folder: str | Path) -> nn.Module:
    """The exported static model in ``folder`` (eval mode), from arch.json and weights.safetensors."""
    space, arch, described = read_arch_json(folder)
    model = build_static(space, arch)
    path = Path(folder) / WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"no {WEIGHTS} in {folder}")
    data = path.read_bytes()
    recorded = described.get("weights_sha256")
    if recorded is not None and sha256_bytes(data) != recorded:
        raise CorruptFileError(f"{path} changed after it was exported (its sha256 differs from the one in "
                               f"{ARCH_JSON}); export the subnet again")
    with reading(path, "exported weights (safetensors)"):
        state = load_safetensors(data)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        detail = " ".join(str(error).split())
        raise ConfigError(f"{path} does not fit the architecture in {ARCH_JSON}: "
                          f"{detail[:300]}{'...' if len(detail) > 300 else ''}") from None
    return model.eval()


def deployed_accuracy(folder: Path, arch: Arch, splits: dict[str, tuple[torch.Tensor, torch.Tensor]],
                      threads: int | None = None, model: torch.nn.Module | None = None, bits: bool = False) -> dict:
    """``<split>_top1`` of the exported model in ``folder`` as deployed, for each ``split: (images,
    labels)``: for an int8 subnet the int8 file's, with the float32 model's top-1 and what
    quantizing cost (of the last split) beside it. ``model``: the float32 model, when already loaded.
    ``bits``: also ``<split>_bits_per_byte``, the float32 model's loss in bits (a byte-level language model's)."""
    model = model if model is not None else load_subnet(folder)
    int8 = load_int8(folder, int8_runtime_of(folder), threads) if arch.precision != 32 else None
    accuracy = {}
    for split, (images, labels) in splits.items():
        result = score(model, images, labels)
        top1 = result.top1
        if bits:
            accuracy[f"{split}_bits_per_byte"] = result.bits
        if int8 is None:
            accuracy[f"{split}_top1"] = top1
            continue
        deployed = score(int8, images, labels).top1
        accuracy.update({f"{split}_top1": deployed, f"{split}_top1_float32": top1,
                         "int8_accuracy_drop": top1 - deployed})
    return accuracy
