"""``elasticnas finetune``: train an exported subnet further, distilled from its supernet.

The export folder names its run (report.json's ``run_folder``, relative to the export, checked
against the sha256 of the run's weights; else the run folder holding ``exports/``); the run
gives the training data and the teacher, its largest subnet. The
fine-tuned subnet is written as a new export folder with the same formats, each checked
against the torch model again, and a report with validation and test top-1 before and after.
"""

from __future__ import annotations

import os
from dataclasses import asdict, replace
from pathlib import Path

import torch

from elasticnas.core.atomic import atomic_write_json
from elasticnas.core.checksums import verify_files
from elasticnas.core.errors import ConfigError
from elasticnas.core.files import read_json
from elasticnas.core.run_layout import FINETUNE_CHECKPOINT as CHECKPOINT
from elasticnas.core.run_layout import REPORT
from elasticnas.core.staging import staged_folder
from elasticnas.export import (
    ARCH_JSON,
    FILES,
    WEIGHTS,
    deployed_accuracy,
    int8_runtime_of,
    load_subnet,
    read_arch_json,
    write_export,
)
from elasticnas.runs import find_run, load_trained, run_pointer
from elasticnas.supernet.arch import FULL_PRECISION
from elasticnas.supernet.evaluation import calibrated_subnet, recalibrate_bn
from elasticnas.supernet.finetuning import FinetuneConfig, finetune

# Copied from the original report: the architecture, so its cost and latency, is unchanged.
UNCHANGED = ("supernet", "space_fingerprint", "precision", "latency_ms_measured", "latency_ms_predicted",
             "device", "runtime", "device_name", "macs", "params", "size_bytes", "peak_activation_bytes")


def finetuned_folder(export_dir: str | Path) -> Path:
    """Where a fine-tuned export goes unless told: ``<export_dir>_finetuned`` beside it."""
    export_dir = Path(export_dir)
    return export_dir.with_name(export_dir.name + "_finetuned")


def exported_formats(export_dir: Path) -> tuple[str, ...]:
    """The formats present in ``export_dir`` (safetensors always)."""
    return ("safetensors", *(name for name, files in FILES.items()
                             if all((export_dir / f).is_file() for f in files)))


def finetune_export(export_dir: str | Path, *, epochs: int = 3, out: str | Path | None = None,
                    run_folder: str | Path | None = None, lr: float | None = None, threads: int | None = None,
                    progress: bool = True) -> dict:
    """Fine-tune the subnet exported in ``export_dir``; returns the new export's report.

    ``lr`` defaults to a tenth of the run's peak learning rate; ``out`` to ``<export_dir>_finetuned``.
    """
    export_dir = Path(export_dir)
    if not (export_dir / WEIGHTS).is_file():
        raise ConfigError(f"{export_dir} is not an export folder: it has no {WEIGHTS} (make one with "
                          f"`elasticnas export`)")
    space, arch, _ = read_arch_json(export_dir)
    before = read_json(export_dir / REPORT, "export report", fields=()) if (export_dir / REPORT).is_file() else {}
    verify_files(export_dir, before.get("sha256") or {}, f"{export_dir / REPORT}")
    run_folder = find_run(export_dir, before, given=run_folder)
    run = load_trained(run_folder)
    if run.space.fingerprint != space.fingerprint:
        raise ConfigError(f"{export_dir} was exported from another supernet (space fingerprint "
                          f"{space.fingerprint}) than the run in {run_folder} ({run.space.fingerprint})")
    out = Path(out) if out else finetuned_folder(export_dir)
    config = FinetuneConfig(epochs=epochs, lr=lr if lr is not None else run.config.optim.lr / 10,
                            batch_size=run.config.data.batch_size, seed=run.config.train.seed)
    validation, test = run.eval_data("val"), run.eval_data("test")
    calibration, val_images = validation.at(arch.resolution, torch.device("cpu"))
    _, test_images = test.at(arch.resolution, torch.device("cpu"))
    splits = {"val": (val_images, validation.labels), "test": (test_images, test.labels)}
    student = load_subnet(export_dir)
    accuracy_before = deployed_accuracy(export_dir, arch, splits, threads, model=student)
    largest = replace(run.space.max(), precision=FULL_PRECISION)
    teacher = calibrated_subnet(run.supernet, largest, validation)
    with staged_folder(out, marker=ARCH_JSON, keep_on_failure=True) as stage:  # its checkpoint resumes
        history = finetune(student, teacher, run.splits.train, resolution=arch.resolution,
                           teacher_resolution=largest.resolution, config=config, checkpoint=stage / CHECKPOINT,
                           identity={"arch": arch.to_json(), "from": str(export_dir.resolve())}, progress=progress)
        recalibrate_bn(student, calibration, validation.calibration_batch_size).eval()
        written = write_export(student, space, arch, stage, formats=exported_formats(export_dir),
                               calibration_images=calibration, int8_runtime=int8_runtime_of(export_dir))
        accuracy_after = deployed_accuracy(stage, arch, splits, threads)  # as written
        report = {"arch": arch.to_dict(), **{k: before[k] for k in UNCHANGED if k in before},
                  **run_pointer(run.folder, out),
                  "finetuned_from": os.path.relpath(export_dir.resolve(), out.resolve()),
                  **accuracy_after, **{f"{k}_before": v for k, v in accuracy_before.items()},
                  "test_top1_gain": accuracy_after["test_top1"] - accuracy_before["test_top1"],
                  "val_top1_gain": accuracy_after["val_top1"] - accuracy_before["val_top1"],
                  "test_images": int(len(test.labels)), "val_images": int(len(validation.labels)),
                  "finetune": {**asdict(config), "teacher": largest.to_dict(), "history": history}, **written}
        (stage / CHECKPOINT).unlink()
        atomic_write_json(stage / REPORT, report)
    return report
