"""Loading a trained run folder: its config, space, data splits and supernet weights.

The folder's layout (every file name, and which stage writes and reads it) is
:mod:`elasticnas.core.run_layout`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from elasticnas.core.checkpoint import load_checkpoint
from elasticnas.core.checksums import sha256_file
from elasticnas.core.config import load_yaml, parse_config
from elasticnas.core.errors import ConfigError
from elasticnas.core.files import read_csv, reading
from elasticnas.core.run_layout import CHECKPOINT, CONFIG, FRONT, IMPORTED_WEIGHTS, SEARCH
from elasticnas.data import DataSplits, load_data
from elasticnas.experiment import ExperimentConfig, build_supernet_of, check_dimensions
from elasticnas.parents import read_weights, safe_open_metadata
from elasticnas.supernet.evaluation import EvalData
from elasticnas.supernet.space import SearchSpace


@dataclass
class TrainedRun:
    """A finished training run (or an imported supernet), loaded: its config and supernet (eval
    mode, CPU); its data splits load on first use."""

    folder: Path
    config: ExperimentConfig
    supernet: nn.Module
    _splits: DataSplits | None = None

    @property
    def space(self) -> SearchSpace:
        return self.supernet.space

    @property
    def splits(self) -> DataSplits:
        if self._splits is None:
            self._splits = load_data(self.config.data)
            check_dimensions(self.config, self._splits)
        return self._splits

    def eval_data(self, split: str = "val") -> EvalData:
        """BN-calibration images from the training split and the ``val`` or ``test`` split to score on."""
        if split not in ("val", "test"):
            raise ConfigError(f"unknown split {split!r}; choose 'val' or 'test'")
        train = self.config.train
        return EvalData.from_datasets(self.splits.train, getattr(self.splits, split),
                                      calibration_images=train.bn_calibration_images, seed=train.seed,
                                      calibration_batch_size=train.bn_calibration_batch_size,
                                      eval_batch_size=self.config.data.eval_batch_size)


def read_metrics(path: Path) -> pd.DataFrame:
    """A run's training metrics (``metrics.csv``: one row per epoch), refused if broken."""
    return read_csv(path, "training metrics (one row per epoch)", columns=("epoch", "train_loss"),
                    numeric=("epoch", "train_loss"))


def run_config(folder: str | Path) -> ExperimentConfig:
    path = Path(folder) / CONFIG
    if not path.is_file():
        raise ConfigError(f"{folder} is not a run folder: it has no {CONFIG} (create one with `elasticnas train`)")
    return parse_config(ExperimentConfig, load_yaml(path))


def run_space(folder: str | Path) -> SearchSpace:
    """The search space of a run, from its config alone (no data, no weights)."""
    return load_trained(folder, weights=False).space


def load_trained(folder: str | Path, *, weights: bool = True, require_finished: bool = True) -> TrainedRun:
    """Load the run in ``folder`` (trained, or imported with ``supernet.safetensors``); refuse an
    unfinished training unless ``require_finished=False``."""
    folder = Path(folder)
    config = run_config(folder)
    fixed = config.supernet.num_classes is not None and config.supernet.in_channels is not None
    splits = None if fixed else load_data(config.data)
    supernet = build_supernet_of(config, *((None, None) if fixed else (splits.num_classes, splits.in_channels)))
    if weights and not (folder / CHECKPOINT).exists() and (folder / IMPORTED_WEIGHTS).exists():
        imported = read_imported(folder / IMPORTED_WEIGHTS, supernet)
        with reading(folder / IMPORTED_WEIGHTS, "imported supernet weights"):
            supernet.load_state_dict(imported)
    elif weights:
        state = load_checkpoint(folder / CHECKPOINT, space_fingerprint=supernet.space.fingerprint)
        with reading(folder / CHECKPOINT, "training checkpoint"):
            epoch = int(state["epoch"])
            supernet.load_state_dict(state["model"])
        if require_finished and epoch < config.train.epochs:
            raise ConfigError(f"training in {folder} stopped at epoch {epoch}/{config.train.epochs}; "
                              f"finish it first: elasticnas train --out {folder} --resume")
    return TrainedRun(folder, config, supernet.eval(), splits)


def read_imported(path: Path, supernet: nn.Module) -> dict[str, torch.Tensor]:
    """The weights of an imported run, refused when they belong to another space."""
    found = safe_open_metadata(path).get("space_fingerprint")
    if found != supernet.space.fingerprint:
        raise ConfigError(f"{path} belongs to another space (fingerprint {found}, this config's is "
                          f"{supernet.space.fingerprint}); import again, or fix the run's config.yaml")
    return read_weights(path)


def spread_by_macs(space: SearchSpace, n: int, *, seed: int = 0, pool_size: int = 20_000) -> list:
    """``n`` distinct subnets whose MACs are spread evenly from the smallest to the largest.

    Uniform sampling piles subnets up in the middle of the MACs range; here a pool is drawn
    at random "size levels" (each gene leaning towards small or large choices by a per-subnet
    level), then the subnet nearest to each of ``n`` evenly spaced MACs targets is taken.
    The plan depends on ``seed`` alone, and a longer plan extends a shorter one.
    """
    from elasticnas.hardware.counting import count_all

    rng = np.random.default_rng(seed)
    pool = [space.min(), space.max()] + [space.sample_at_level(rng, rng.random()) for _ in range(pool_size)]
    pool = list(dict.fromkeys(pool))
    macs = count_all(space, pool)["macs"].astype(float)
    order, taken = [], np.zeros(len(pool), dtype=bool)
    for target in _spread_targets(macs.min(), macs.max(), n):
        distance = np.where(taken, np.inf, np.abs(macs - target))
        best = int(np.argmin(distance))
        if not np.isfinite(distance[best]):
            break
        taken[best] = True
        order.append(pool[best])
    return order


def _spread_targets(low: float, high: float, n: int) -> np.ndarray:
    # A van der Corput sequence: every prefix covers [low, high] evenly, so asking for more
    # subnets later keeps the ones already chosen.
    def radical_inverse(i: int) -> float:
        value, denominator = 0.0, 1.0
        while i:
            denominator *= 2
            i, bit = divmod(i, 2)
            value += bit / denominator
        return value

    points = np.array([0.0, 1.0] + [radical_inverse(i) for i in range(1, max(n - 1, 1))])[:n]
    return low + points * (high - low)


def run_weights_file(folder: str | Path) -> Path:
    """The file holding a run's supernet weights: its training checkpoint, or imported weights."""
    folder = Path(folder)
    return folder / CHECKPOINT if (folder / CHECKPOINT).exists() else folder / IMPORTED_WEIGHTS


def run_pointer(run_folder: str | Path, export_folder: str | Path) -> dict:
    """How an export names its run: relative to the export, so the two can be copied or moved
    together, and by the sha256 of the run's weights, so a pointer to another run is caught."""
    run_folder = Path(run_folder).resolve()
    weights = run_weights_file(run_folder)
    return {"run_folder": os.path.relpath(run_folder, Path(export_folder).resolve()),
            "run_weights_sha256": sha256_file(weights) if weights.exists() else None}


def find_run(export_folder: str | Path, report: dict, given: str | Path | None = None) -> Path:
    """The run ``export_folder`` was exported from: ``given``, else the one its report names
    (relative to the export; older reports hold an absolute path), else the folder above
    ``exports/``; refused when its weights are not those the report records."""
    export_folder = Path(export_folder)
    pointer = report.get("run_folder")
    candidates = [Path(given)] if given else [
        *([export_folder / pointer] if pointer else []), export_folder.resolve().parent.parent]
    for folder in candidates:
        if (folder / CONFIG).is_file():
            return _same_weights(folder, report, export_folder)
    raise ConfigError(f"cannot tell which run {export_folder} was exported from (looked in "
                      f"{', '.join(map(str, candidates))}); pass --run RUN_FOLDER")


def _same_weights(run_folder: Path, report: dict, export_folder: Path) -> Path:
    recorded = report.get("run_weights_sha256")
    weights = run_weights_file(run_folder)
    if recorded and (not weights.exists() or sha256_file(weights) != recorded):
        raise ConfigError(f"{run_folder} is not the run {export_folder} was exported from (its weights "
                          f"{weights.name} differ from those its report.json records); pass --run with that run")
    return run_folder


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def latest_search(run_folder: Path) -> Path:
    """The most recently written search folder of the run."""
    folders = sorted((p.parent for p in (run_folder / SEARCH).glob(f"*/{FRONT}")), key=lambda p: p.stat().st_mtime)
    if not folders:
        raise ConfigError(f"no search results in {run_folder / SEARCH}: run `elasticnas search {run_folder}` first, "
                          f"or export with --arch-json")
    return folders[-1]
