"""Experiment configs (YAML -> typed dataclasses) and the training entry point.

A run folder holds ``config.yaml`` (the resolved config), ``checkpoint.pt``,
``metrics.csv`` and ``training_curves.png``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import torch
import yaml

from elasticnas.core.atomic import atomic_write_json, atomic_write_text
from elasticnas.core.config import apply_overrides, config_to_dict, load_yaml, parse_config
from elasticnas.core.distributed import init_from_env, rank_and_world
from elasticnas.core.errors import ConfigError
from elasticnas.core.files import read_json
from elasticnas.core.run_layout import CHECKPOINT, CONFIG, CORPUS
from elasticnas.data import DataConfig, load_data
from elasticnas.parents import inherit_parent, with_parent_recorded, with_parent_space
from elasticnas.supernet import build_supernet, create_supernet, space_from_config
from elasticnas.supernet.divergence import check_fix, mark_fixed
from elasticnas.supernet.evaluation import EvalData
from elasticnas.supernet.training import OptimConfig, SamplerConfig, TrainConfig, Trainer, resolve_device

# the bundled configs: package data, found in a wheel install as in an editable checkout
EXPERIMENTS = Path(str(resources.files("elasticnas.configs")))
QUICKSTART_CONFIG = "mnist_quickstart"  # the sampling-strategy benchmark's choice (docs/benchmarks.md)
DEFAULT_CONFIG = QUICKSTART_CONFIG  # `elasticnas train` without a config trains what the quickstart does
# the quickstart's config for a supernet the benchmark did not measure and that has no bundled recipe
SANDWICH_CONFIG = "mnist_sandwich"


@dataclass(frozen=True)
class SupernetConfig:
    name: str = "tiny_mbv3"  # a registered preset, or the name of ``space``
    overrides: dict = field(default_factory=dict)  # fields of the space to replace, e.g. resolutions
    num_classes: int | None = None  # None: from the data (an imported supernet records its own)
    in_channels: int | None = None  # None: from the data
    # a space derived from a model (`elasticnas elasticize` writes it), used instead of a preset's
    space: dict | None = None

    def __post_init__(self) -> None:
        if self.space is None:
            return
        if not isinstance(self.space, dict) or self.space.get("name") != self.name or self.overrides:
            raise ConfigError(f"supernet.space must be a saved space whose name is supernet.name ({self.name!r}), "
                              f"with no supernet.overrides (its fields come from the model); got overrides "
                              f"{self.overrides} and a space named "
                              f"{self.space.get('name') if isinstance(self.space, dict) else self.space!r}")


@dataclass(frozen=True)
class InitConfig:
    """Where the supernet's first weights come from: fresh (``source: null``) or a parent."""

    source: str | None = None  # a run folder or a checkpoint file (.pt, .safetensors) of this project
    sha256: str | None = None  # of the parent's weights; recorded when training starts
    format: str | None = None  # set by import-ofa: the foreign checkpoint format it read
    input_filters: Literal["sum", "average"] = "sum"  # 1 <-> several input channels (supernet/transfer.py)
    reset_classifier: bool = False  # True: a fresh classifier, for labels that mean other classes
    freeze: tuple[str, ...] = ()  # shell-style parameter names to freeze at first, e.g. "stem.*"
    freeze_epochs: int = 0  # epochs during which `freeze` holds
    # BigNAS: the scale of the last batch norm of every residual branch starts at zero, so each
    # residual block starts as the identity (fresh weights only; a parent's replace them). A
    # family without such norms (ViT: LayerNorm before each branch) is left as it is, with a warning.
    zero_residual_norms: bool = False

    def __post_init__(self) -> None:
        if self.freeze_epochs < 0 or (self.freeze_epochs and not self.freeze):
            raise ConfigError(f"init.freeze_epochs={self.freeze_epochs} needs to be >= 0, and init.freeze to name "
                              f"parameters when it is > 0 (got freeze={list(self.freeze)})")


@dataclass(frozen=True)
class ExperimentConfig:
    data: DataConfig = field(default_factory=DataConfig)
    supernet: SupernetConfig = field(default_factory=SupernetConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    init: InitConfig = field(default_factory=InitConfig)

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)


def find_config(name_or_path: str | Path | None) -> Path:
    """A config path, or the name of a bundled one (``experiments/configs/``; default: the quickstart's)."""
    candidate = Path(name_or_path or DEFAULT_CONFIG)
    for path in (candidate, EXPERIMENTS / candidate, EXPERIMENTS / f"{candidate}.yaml"):
        if path.is_file():
            return path
    known = sorted(p.name for p in EXPERIMENTS.glob("*.yaml")) if EXPERIMENTS.is_dir() else []
    raise ConfigError(f"config {str(name_or_path)!r} not found; give a path or one of: {', '.join(known)}")


def recipe_for(supernet: str, sampler: str | None = "sandwich", folder: Path = EXPERIMENTS) -> str | None:
    """The bundled config that trains ``supernet`` with ``sampler`` (None: any sampler; a family's own
    recipe, e.g. AdamW and warm-up for transformers, on its kind of data), or None when there is none.

    Where several do (a strategy and its variants, e.g. ``mnist_uniform`` and
    ``mnist_uniform_smallest``), the one setting the fewest sampler options is the recipe, whatever
    the file names; two with as few are an error, since neither is the plain one."""
    matches = []
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        data = load_yaml(path)
        chosen = data.get("sampler") or {}
        if (data.get("supernet") or {}).get("name") == supernet and sampler in (None, chosen.get("name")):
            matches.append((len(chosen.get("options") or {}), path.stem))
    if not matches:
        return None
    fewest = min(count for count, _ in matches)
    plainest = [name for count, name in matches if count == fewest]
    if len(plainest) > 1:
        raise ConfigError(f"bundled configs {plainest} all train {supernet} with the {sampler} sampler and "
                          f"{fewest} sampler options: give one of them more options or remove one")
    return plainest[0]


def quickstart_config(supernet: str | None = None, run_folder: str | Path | None = None) -> str:
    """The config ``elasticnas quickstart`` trains: a run folder's own, when the run was begun
    earlier (it resumes as it began, whatever the default is now); else its own for its
    supernet (or none named), else the named supernet's bundled sandwich recipe, else its one
    bundled recipe of another strategy (a language model's), else the default config (the
    supernet swapped in by the caller): the quickstart's own choice was measured on its
    supernet only."""
    if run_folder is not None and (Path(run_folder) / CONFIG).exists():
        return str(Path(run_folder) / CONFIG)
    own = load_yaml(find_config(QUICKSTART_CONFIG))["supernet"]["name"]
    if supernet is None or supernet == own:
        return QUICKSTART_CONFIG
    return recipe_for(supernet) or recipe_for(supernet, None) or SANDWICH_CONFIG


def load_experiment(source: str | Path | dict | None = None, overrides: list[str] = ()) -> ExperimentConfig:
    data = dict(source) if isinstance(source, dict) else load_yaml(find_config(source))
    return parse_config(ExperimentConfig, apply_overrides(data, overrides))


def build_run(config: ExperimentConfig):
    """Data splits and a fresh supernet for ``config`` (classes and channels from the data)."""
    splits = load_data(config.data)
    check_dimensions(config, splits)
    supernet = build_supernet_of(config, splits.num_classes, splits.in_channels)
    check_modality(supernet.space, splits)
    return splits, supernet


def build_supernet_of(config: ExperimentConfig, num_classes: int | None = None, in_channels: int | None = None):
    """A freshly initialised supernet of ``config``; the config's own dimensions win over the given ones."""
    num_classes = config.supernet.num_classes or num_classes
    in_channels = config.supernet.in_channels or in_channels
    if num_classes is None or in_channels is None:
        raise ConfigError("the supernet's class and channel counts come from the data; load it first")
    with torch.random.fork_rng(devices=[]):  # the initial weights depend on train.seed alone
        torch.manual_seed(config.train.seed)
        if config.supernet.space is not None:
            supernet = build_supernet(space_from_config(config.supernet.space))
        else:
            supernet = create_supernet(config.supernet.name, num_classes=num_classes, in_channels=in_channels,
                                       **config.supernet.overrides)
    if config.init.zero_residual_norms:
        norms = supernet.residual_output_norms()
        if not norms:
            logging.getLogger(__name__).warning(
                "init.zero_residual_norms: supernet %r has no batch norm ending a residual branch; nothing to zero",
                config.supernet.name)
        with torch.no_grad():
            for norm in norms:
                norm.weight.zero_()
    return supernet


def check_dimensions(config: ExperimentConfig, splits) -> None:
    """Refuse data whose classes or channels differ from those the config fixes for its supernet."""
    for key, fixed, found in (("num_classes", config.supernet.num_classes, splits.num_classes),
                              ("in_channels", config.supernet.in_channels, splits.in_channels)):
        if fixed is not None and fixed != found:
            raise ConfigError(f"supernet.{key}={fixed}, but dataset {splits.name!r} has {found}; start a transfer "
                              f"run instead: elasticnas train CONFIG --init RUN")


def check_modality(space, splits) -> None:
    """Refuse a supernet that reads other inputs than the data holds, or longer contexts than its windows."""
    if space.modality != splits.modality:
        raise ConfigError(f"supernet {space.name!r} reads {space.modality}, but dataset {splits.name!r} holds "
                          f"{splits.modality}; choose a {space.modality} dataset (data.name)")
    if space.modality == "text" and max(space.resolutions) > splits.image_size:
        raise ConfigError(f"supernet {space.name!r} reads contexts of up to {max(space.resolutions)} tokens, but "
                          f"data.context={splits.image_size}; raise data.context or lower "
                          f"supernet.overrides.resolutions")


def train_experiment(config: ExperimentConfig, run_dir: str | Path, *, resume: bool = False,
                     progress: bool = True, on_step=None):
    """Train the supernet of ``config`` into ``run_dir``; returns ``(trainer, metrics)``."""
    run_dir = Path(run_dir)
    saved = run_dir / CONFIG
    config = with_parent_space(config) if config.init.source else config
    changed = {}
    if resume:
        if not saved.exists():
            raise ConfigError(f"nothing to resume in {run_dir}: it has no config.yaml")
        previous = parse_config(ExperimentConfig, load_yaml(saved))
        if config.init.source and config.init.sha256 is None:  # the parent was hashed when the run began
            config = replace(config, init=replace(config.init, sha256=previous.init.sha256))
        changed = _differences(previous.to_dict(), config.to_dict())
        check_fix(run_dir, changed)  # only a diverged run may resume with other (optimiser) settings
    elif (run_dir / CHECKPOINT).exists():
        raise ConfigError(f"{run_dir} already holds a training run; pass --resume to continue it "
                          f"or choose another --out")
    init_from_env(resolve_device(config.train.device))  # under torchrun: join before sharding the data
    config, splits, trainer = prepare_training(config, run_dir, resume=resume, progress=progress, on_step=on_step)
    if resume:
        check_corpus(run_dir, splits)
    if trainer.rank == 0 and (not resume or changed):
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(saved, yaml.safe_dump(config.to_dict(), sort_keys=False))
        if changed:
            mark_fixed(run_dir, changed)
    if trainer.rank == 0 and splits.sha256 is not None and not (run_dir / CORPUS).exists():
        atomic_write_json(run_dir / CORPUS, {"dataset": splits.name, "sha256": splits.sha256})
    metrics = trainer.fit(resume=resume)
    return trainer, metrics


def check_corpus(run_dir: Path, splits) -> None:
    """Refuse to resume on another text than the run began with (Python versions ship other help topics)."""
    if not (run_dir / CORPUS).exists() or splits.sha256 is None:
        return
    recorded = read_json(run_dir / CORPUS, "the run's corpus record", fields=("sha256",))["sha256"]
    if recorded != splits.sha256:
        raise ConfigError(f"dataset {splits.name!r} is not the text this run began with (SHA-256 {splits.sha256[:16]} "
                          f"here, {recorded[:16]} in {run_dir / CORPUS}): another Python ships other help topics "
                          f"and other sources; resume with the Python the run began with, or start a new run")


def prepare_training(config: ExperimentConfig, run_dir: str | Path, *, resume: bool = False, progress: bool = True,
                     on_step=None) -> tuple[ExperimentConfig, Any, Trainer]:
    """Everything a run does before its first step, writing nothing: the parent hashed and loaded
    (checked compatible), the data and the supernet built, evaluation data drawn, optimiser and
    sampler made: ``(config with its parent recorded, data splits, trainer)``. ``elasticnas train
    --dry-run`` calls it too, so it refuses what a run would."""
    resolve_device(config.train.device)
    config = with_parent_recorded(config) if config.init.source and not resume else config
    splits, supernet = build_run(config)
    if config.init.source and not resume:
        for line in inherit_parent(supernet, config):
            if progress and rank_and_world()[0] == 0:
                print(line)
    eval_data = EvalData.from_datasets(splits.train, splits.val, calibration_images=config.train.bn_calibration_images,
                                       seed=config.train.seed,
                                       calibration_batch_size=config.train.bn_calibration_batch_size,
                                       eval_batch_size=config.data.eval_batch_size)
    trainer = Trainer(supernet, splits.train, eval_data, train=config.train, optim=config.optim,
                      sampler=config.sampler, batch_size=config.data.batch_size, run_dir=run_dir,
                      experiment=config.to_dict(), progress=progress, on_step=on_step,
                      freeze=(config.init.freeze, config.init.freeze_epochs))
    return config, splits, trainer


def _differences(a: dict, b: dict, prefix: str = "") -> dict[str, tuple]:
    """``{dotted key: (value in a, value in b)}`` for every leaf that differs."""
    keys = {}
    for key in sorted(set(a) | set(b)):
        left, right = a.get(key), b.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            keys.update(_differences(left, right, f"{prefix}{key}."))
        elif left != right:
            keys[f"{prefix}{key}"] = (left, right)
    return keys
