"""Experiment configs (YAML -> typed dataclasses) and the training entry point.

A run folder holds ``config.yaml`` (the resolved config), ``checkpoint.pt``,
``metrics.csv`` and ``training_curves.png``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from elasticnas.core.atomic import atomic_write_text
from elasticnas.core.config import apply_overrides, config_to_dict, load_yaml, parse_config
from elasticnas.core.distributed import init_from_env
from elasticnas.core.errors import ConfigError
from elasticnas.data import DataConfig, load_data
from elasticnas.supernet import create_supernet
from elasticnas.supernet.evaluation import EvalData
from elasticnas.supernet.training import OptimConfig, SamplerConfig, TrainConfig, Trainer, resolve_device

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
DEFAULT_CONFIG = "mnist_sandwich.yaml"


@dataclass(frozen=True)
class SupernetConfig:
    name: str = "tiny_mbv3"  # a registered preset; classes and input channels come from the data
    overrides: dict = field(default_factory=dict)  # fields of the space to replace, e.g. resolutions


@dataclass(frozen=True)
class ExperimentConfig:
    data: DataConfig = field(default_factory=DataConfig)
    supernet: SupernetConfig = field(default_factory=SupernetConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)


def find_config(name_or_path: str | Path | None) -> Path:
    """A config path, or the name of one in ``experiments/`` (default: the sandwich MNIST config)."""
    candidate = Path(name_or_path or DEFAULT_CONFIG)
    for path in (candidate, EXPERIMENTS / candidate, EXPERIMENTS / f"{candidate}.yaml"):
        if path.is_file():
            return path
    known = sorted(p.name for p in EXPERIMENTS.glob("*.yaml")) if EXPERIMENTS.is_dir() else []
    raise ConfigError(f"config {str(name_or_path)!r} not found; give a path or one of: {', '.join(known)}")


def recipe_for(supernet: str, sampler: str = "sandwich") -> str | None:
    """The bundled MNIST config that trains ``supernet`` with ``sampler`` (a family's own recipe, e.g.
    AdamW and warm-up for transformers), or None when there is none."""
    for path in sorted(EXPERIMENTS.glob("mnist_*.yaml")) if EXPERIMENTS.is_dir() else []:
        data = load_yaml(path)
        if (data.get("supernet") or {}).get("name") == supernet and (data.get("sampler") or {}).get("name") == sampler:
            return path.stem
    return None


def load_experiment(source: str | Path | dict | None = None, overrides: list[str] = ()) -> ExperimentConfig:
    data = dict(source) if isinstance(source, dict) else load_yaml(find_config(source))
    return parse_config(ExperimentConfig, apply_overrides(data, overrides))


def build_run(config: ExperimentConfig):
    """Data splits and a fresh supernet for ``config`` (classes and channels from the data)."""
    splits = load_data(config.data)
    with torch.random.fork_rng(devices=[]):  # the initial weights depend on train.seed alone
        torch.manual_seed(config.train.seed)
        supernet = create_supernet(config.supernet.name, num_classes=splits.num_classes,
                                   in_channels=splits.in_channels, **config.supernet.overrides)
    return splits, supernet


def train_experiment(config: ExperimentConfig, run_dir: str | Path, *, resume: bool = False,
                     progress: bool = True, on_step=None):
    """Train the supernet of ``config`` into ``run_dir``; returns ``(trainer, metrics)``."""
    run_dir = Path(run_dir)
    saved = run_dir / "config.yaml"
    if resume:
        if not saved.exists():
            raise ConfigError(f"nothing to resume in {run_dir}: it has no config.yaml")
        previous = parse_config(ExperimentConfig, load_yaml(saved))
        if previous != config:
            changed = _differences(previous.to_dict(), config.to_dict())
            raise ConfigError(f"--resume needs the run's own config; these keys differ from {saved}: "
                              f"{', '.join(changed)}")
    elif (run_dir / "checkpoint.pt").exists():
        raise ConfigError(f"{run_dir} already holds a training run; pass --resume to continue it "
                          f"or choose another --out")
    init_from_env(resolve_device(config.train.device))  # under torchrun: join before sharding the data
    splits, supernet = build_run(config)
    eval_data = EvalData.from_datasets(splits.train, splits.val, calibration_images=config.train.bn_calibration_images,
                                       seed=config.train.seed,
                                       calibration_batch_size=config.train.bn_calibration_batch_size,
                                       eval_batch_size=config.data.eval_batch_size)
    trainer = Trainer(supernet, splits.train, eval_data, train=config.train, optim=config.optim,
                      sampler=config.sampler, batch_size=config.data.batch_size, run_dir=run_dir,
                      experiment=config.to_dict(), progress=progress, on_step=on_step)
    if trainer.rank == 0 and not resume:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(saved, yaml.safe_dump(config.to_dict(), sort_keys=False))
    metrics = trainer.fit(resume=resume)
    return trainer, metrics


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(a) | set(b)):
        left, right = a.get(key), b.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            keys += _differences(left, right, f"{prefix}{key}.")
        elif left != right:
            keys.append(f"{prefix}{key}")
    return keys
