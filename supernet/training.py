"""Train a supernet once: one config, every phase, resumable, single- or multi-process.

A step trains the subnets its sampling strategy returns, one after another (peak memory
of one subnet), accumulating gradients, then takes one optimizer step; in a distributed
run gradients are averaged once, after the last backward pass of the step.
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from elasticnas.core.atomic import atomic_save_figure, atomic_write_text, pyplot
from elasticnas.core.checkpoint import load_checkpoint, save_checkpoint
from elasticnas.core.config import require_range
from elasticnas.core.distributed import all_reduce_gradients, all_reduce_sum, init_from_env
from elasticnas.core.errors import ConfigError, ElasticNASError
from elasticnas.core.run_layout import CHECKPOINT, METRICS, TRAINING_CURVES
from elasticnas.supernet.batches import epoch_order, iterate, resize
from elasticnas.supernet.divergence import record_divergence
from elasticnas.supernet.evaluation import EvalData, batch_norms, calibrated_subnet, evaluate_many
from elasticnas.supernet.losses import distillation_loss, label_loss
from elasticnas.supernet.memory_layout import channels_last, default_layout
from elasticnas.supernet.regularisation import regularisation_off
from elasticnas.supernet.reorder import reorder_channels
from elasticnas.supernet.samplers import StepContext, create_strategy
from elasticnas.supernet.transfer import set_frozen


@dataclass(frozen=True)
class OptimConfig:
    name: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.05  # peak learning rate, reached after the warm-up
    momentum: float = 0.9  # SGD momentum (Nesterov when nesterov is true)
    nesterov: bool = True
    betas: tuple[float, ...] = (0.9, 0.999)  # AdamW
    weight_decay: float = 4e-5  # not applied to batch norm, biases or kernel transforms
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.0  # the schedule ends at lr * min_lr_ratio
    # cosine: half a cosine from lr to the ending; exponential (BigNAS): exponential decay that
    # reaches the ending at `constant_after` of the steps after warm-up, then stays there
    schedule: Literal["cosine", "exponential"] = "cosine"
    constant_after: float = 0.8
    label_smoothing: float = 0.1
    grad_clip: float | None = 5.0  # max global gradient norm; null to disable

    def __post_init__(self) -> None:
        require_range("optim.lr", self.lr, above=0)
        require_range("optim.weight_decay", self.weight_decay, low=0)
        require_range("optim.momentum", self.momentum, low=0, below=1)
        require_range("optim.warmup_epochs", self.warmup_epochs, low=0)
        require_range("optim.min_lr_ratio", self.min_lr_ratio, low=0, high=1)
        require_range("optim.label_smoothing", self.label_smoothing, low=0, below=1)
        for beta in self.betas:
            require_range("optim.betas", beta, low=0, below=1)
        if self.grad_clip is not None:
            require_range("optim.grad_clip", self.grad_clip, above=0)
        if self.schedule not in ("cosine", "exponential"):
            raise ConfigError(f"optim.schedule={self.schedule!r} is not allowed; choose cosine or exponential")
        if self.schedule == "exponential" and not (0 < self.min_lr_ratio < 1 and 0 < self.constant_after <= 1):
            raise ConfigError(f"optim.schedule=exponential needs 0 < optim.min_lr_ratio < 1 (its constant ending) "
                              f"and 0 < optim.constant_after <= 1; got {self.min_lr_ratio}, {self.constant_after}")


@dataclass(frozen=True)
class SamplerConfig:
    name: str = "sandwich"  # see elasticnas.supernet.list_strategies()
    options: dict = field(default_factory=dict)  # the strategy's knobs


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    seed: int = 0
    device: str = "auto"  # auto, cpu or cuda
    amp: bool = True  # mixed precision on CUDA (ignored on CPU)
    bn_calibration_images: int = 2000  # training images used to recalibrate BN before evaluation
    bn_calibration_batch_size: int = 250
    evaluate_every: int = 1  # epochs between validation of the max, middle and min subnets
    # BigNAS: dropout, stochastic depth and label smoothing on the largest subnet only
    regularise_largest_only: bool = False
    # convolutions channels-last (supernet/memory_layout.py: 1.3-1.6x faster steps on CPU); its
    # batch norm sums in another order, so a run differs from a default-layout one at rounding
    channels_last: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.evaluate_every < 1:
            raise ConfigError(f"train.epochs and train.evaluate_every must be >= 1, got {self.epochs}, "
                              f"{self.evaluate_every}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"train.device={self.device!r} is not allowed; choose auto, cpu or cuda")


AMP_NON_FINITE_STEPS = 20  # consecutive skipped steps after which mixed precision counts as diverged


class TrainingInterrupted(ElasticNASError):
    """Training stopped on a signal after writing a checkpoint to resume from."""


class TrainingDiverged(ElasticNASError):
    """The training loss stopped being a finite number: the weights it would save are useless."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("train.device is cuda but CUDA is not available; use train.device=cpu")
    return torch.device(name)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on convolution and linear weights only (and not on what the model exempts)."""
    exempt = model.no_weight_decay() if hasattr(model, "no_weight_decay") else set()
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 or name in exempt else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, config: OptimConfig) -> torch.optim.Optimizer:
    groups = parameter_groups(model, config.weight_decay)
    if config.name == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)
    return torch.optim.AdamW(groups, lr=config.lr, betas=tuple(config.betas))


def _after_warmup(step: int, total: int, warmup: int) -> float | None:
    """The share of the post-warm-up steps done at ``step`` (0..1); None during warm-up."""
    return None if step < warmup else min((step - warmup) / max(1, total - warmup), 1.0)


def warmup_cosine(step: int, total: int, warmup: int, min_ratio: float) -> float:
    progress = _after_warmup(step, total, warmup)
    if progress is None:
        return (step + 1) / warmup
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def lr_multiplier(step: int, total: int, warmup: int, optim: OptimConfig) -> float:
    """The learning rate at ``step`` as a share of ``optim.lr``, by ``optim.schedule``."""
    progress = _after_warmup(step, total, warmup)
    if optim.schedule != "exponential" or progress is None:
        return warmup_cosine(step, total, warmup, optim.min_lr_ratio)
    return optim.min_lr_ratio ** min(progress / optim.constant_after, 1.0)


@contextlib.contextmanager
def _bn_statistics_frozen(model: nn.Module):
    """Forward passes inside leave every batch-norm buffer as it was."""
    saved = {name: buf.clone() for name, buf in model.named_buffers()}
    try:
        yield
    finally:
        with torch.no_grad():
            for name, buf in model.named_buffers():
                buf.copy_(saved[name])


class Trainer:
    """Train ``supernet`` on ``train_set`` with the configured strategy; checkpoints go to ``run_dir``."""

    def __init__(self, supernet: nn.Module, train_set: Dataset, eval_data: EvalData | None, *,
                 train: TrainConfig, optim: OptimConfig, sampler: SamplerConfig, batch_size: int,
                 run_dir: str | Path, experiment: dict[str, Any] | None = None, progress: bool = True,
                 on_step: Callable[[Trainer, int], None] | None = None,
                 freeze: tuple[tuple[str, ...], int] = ((), 0)):
        self.train_cfg, self.optim_cfg, self.sampler_cfg = train, optim, sampler
        self.device = resolve_device(train.device)
        self.rank, self.world = init_from_env(self.device)
        if batch_size % self.world:
            raise ConfigError(f"data.batch_size={batch_size} must be divisible by the {self.world} processes")
        self.model = supernet.to(self.device)
        self.space = supernet.space
        self._largest = self.space.max()
        self.train_set, self.eval_data, self.batch_size = train_set, eval_data, batch_size
        self.run_dir = Path(run_dir)
        self.experiment = experiment or {}
        self.progress = progress and self.rank == 0
        self.on_step = on_step
        self.freeze_patterns, self.freeze_epochs = freeze
        if self.freeze_patterns:
            set_frozen(self.model, self.freeze_patterns, False)  # checks that the patterns name parameters
        self.strategy = create_strategy(sampler.name, self.space, sampler.options, seed=train.seed)
        self.distill_kind = self.strategy.distillation
        self.steps_per_epoch = len(train_set) // batch_size
        if self.steps_per_epoch < 1:
            raise ConfigError(f"data.batch_size={batch_size} exceeds the {len(train_set)} training images")
        self.total_steps = self.steps_per_epoch * train.epochs
        self.optimizer = build_optimizer(self.model, optim)
        warmup = int(round(optim.warmup_epochs * self.steps_per_epoch))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_multiplier(s, self.total_steps, warmup, optim))
        self.use_amp = train.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.teacher: nn.Module | None = None
        self.epoch, self.step_in_epoch, self.history = 0, 0, []
        self.phase = None
        self._epoch_losses: list[float] = []
        self._stop_requested = False
        self._non_finite = 0  # consecutive steps whose loss was not a finite number

    # ----- public ------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Stop after the current step, writing a checkpoint (what SIGTERM and SIGINT do)."""
        self._stop_requested = True

    @property
    def global_step(self) -> int:
        return self.epoch * self.steps_per_epoch + self.step_in_epoch

    def fit(self, *, resume: bool = False) -> pd.DataFrame:
        """Train to the configured number of epochs; returns the per-epoch metrics."""
        torch.manual_seed(self.train_cfg.seed)  # dropout draws from torch's default generator
        if resume:
            self._restore(load_checkpoint(self.run_dir / CHECKPOINT, space_fingerprint=self.space.fingerprint))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.progress and not batch_norms(self.model):
            tqdm.write("no batch norm in this supernet: evaluation runs subnets as they are, without recalibration")
        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
        for sig in previous:
            signal.signal(sig, lambda *_: self.request_stop())
        self._layout(self.model)  # copy_ (restoring, reordering channels) keeps the layout from here on
        try:
            while self.epoch < self.train_cfg.epochs:
                self._train_epoch()
        finally:
            default_layout(self.model)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return pd.DataFrame(self.history)

    def _layout(self, module: nn.Module) -> nn.Module:
        return channels_last(module) if self.train_cfg.channels_last else module

    # ----- one epoch ---------------------------------------------------------------------
    def _train_epoch(self) -> None:
        started = time.perf_counter()
        if self.freeze_patterns:  # frozen parameters get no gradient, so no optimizer step moves them
            set_frozen(self.model, self.freeze_patterns, self.epoch < self.freeze_epochs)
        losses = self._epoch_losses  # survives an interruption through the checkpoint
        order = epoch_order(len(self.train_set), self.train_cfg.seed, self.epoch)
        order = order[: self.steps_per_epoch * self.batch_size]
        batches = iterate(self.train_set, order[self.step_in_epoch * self.batch_size :], self.batch_size)
        bar = tqdm(total=self.steps_per_epoch, initial=self.step_in_epoch, disable=not self.progress,
                   desc=f"epoch {self.epoch + 1}/{self.train_cfg.epochs}", unit="step", leave=False)
        self.model.train()
        for images, labels in batches:
            local = slice(self.rank, None, self.world)
            losses.append(self._train_step(images[local].to(self.device), labels[local].to(self.device)))
            self._check_finite(losses[-1])
            self.step_in_epoch += 1
            bar.update()
            bar.set_postfix(loss=f"{losses[-1]:.3f}", phase=self.phase)
            if self.on_step is not None:
                self.on_step(self, self.global_step)
            self._agree_on_stop()
            if self._stop_requested and self.step_in_epoch < self.steps_per_epoch:
                bar.close()
                self._save()
                raise TrainingInterrupted(
                    f"stopped at epoch {self.epoch + 1}, step {self.step_in_epoch}/{self.steps_per_epoch}; "
                    f"checkpoint in {self.run_dir}; continue with: elasticnas train --out {self.run_dir} --resume")
        bar.close()
        record = {"epoch": self.epoch + 1, "phase": self.phase, "train_loss": float(np.mean(losses)) if losses else
                  float("nan"), "lr": self.scheduler.get_last_lr()[0], "seconds": time.perf_counter() - started}
        self.epoch, self.step_in_epoch, self._epoch_losses = self.epoch + 1, 0, []
        if self.eval_data is not None and (self.epoch % self.train_cfg.evaluate_every == 0
                                           or self.epoch == self.train_cfg.epochs):
            named = {"max": self.space.max(), "middle": self.space.middle(), "min": self.space.min()}
            for name, result in zip(named, evaluate_many(self.model, list(named.values()), self.eval_data),
                                    strict=True):
                record[f"val_top1_{name}"] = result.top1
                record[f"val_loss_{name}"] = result.loss
                if self.space.modality == "text":  # byte-level tokens: the loss in bits is bits per byte
                    record[f"val_bits_per_byte_{name}"] = result.bits
            self.model.train()
        self.history.append(record)
        self._save()
        if self.rank == 0:
            write_metrics(self.run_dir, self.history)
        if self._stop_requested and self.epoch < self.train_cfg.epochs:
            raise TrainingInterrupted(f"stopped after epoch {self.epoch}; checkpoint in {self.run_dir}; "
                                      f"continue with: elasticnas train --out {self.run_dir} --resume")

    # ----- one step ----------------------------------------------------------------------
    def _train_step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        step = self.global_step
        self._enter_phase(self.strategy.phase(step, self.total_steps))
        context = StepContext(step, self.total_steps, score=lambda archs: self._score(archs, images, labels))
        tasks = self.strategy.sample(context)
        self.optimizer.zero_grad(set_to_none=True)
        soft_targets = None
        if self.teacher is not None:
            with torch.no_grad():
                soft_targets = self.teacher(resize(images, max(self.space.resolutions))).float()
        total = 0.0
        for task in tasks:
            plain = self.train_cfg.regularise_largest_only and task.arch != self._largest
            with torch.autocast("cuda", enabled=self.use_amp), regularisation_off(self.model, plain):
                logits = self.model(resize(images, task.arch.resolution), task.arch)
            logits = logits.float()
            distill = task.distill and soft_targets is not None
            loss = distillation_loss(logits, soft_targets, self.distill_kind) if distill else 0.0
            if not distill or task.with_labels:
                smoothing = 0.0 if plain else self.optim_cfg.label_smoothing
                loss = loss + label_loss(logits, labels, smoothing)
            if task.teacher:
                soft_targets = logits.detach()
            self.scaler.scale(loss * task.weight).backward()
            total += float(loss.detach()) / len(tasks)
        all_reduce_gradients(self.model.parameters())
        self.scaler.unscale_(self.optimizer)
        if self.optim_cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.optim_cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        mean = torch.tensor([total], dtype=torch.float64)
        return float(all_reduce_sum(mean)[0]) / self.world

    def _check_finite(self, loss: float) -> None:
        """Stop at a non-finite loss, before anything is saved (under mixed precision the scaler
        skips such steps itself, so only a run of them stops it)."""
        self._non_finite = 0 if math.isfinite(loss) else self._non_finite + 1
        if self._non_finite == 0 or (self.use_amp and self._non_finite < AMP_NON_FINITE_STEPS):
            return
        checkpoint = self.run_dir / CHECKPOINT
        saved = checkpoint.exists()
        if self.rank == 0 and saved:
            record_divergence(self.run_dir, epoch=self.epoch + 1, step=self.step_in_epoch + 1, loss=loss,
                              checkpoint_epoch=self.epoch)
        then = (f"the last good checkpoint is {checkpoint} (after epoch {self.epoch}): lower optim.lr or set "
                f"optim.grad_clip and resume it (train --out {self.run_dir} --resume --set optim.lr=...)" if saved
                else "no checkpoint was written before it: lower optim.lr or set optim.grad_clip and train again")
        raise TrainingDiverged(f"the training loss became {loss} at epoch {self.epoch + 1}, step "
                               f"{self.step_in_epoch + 1}; nothing was saved after it, and {then}")

    def _agree_on_stop(self) -> None:
        """A signal may reach the processes at different steps: stop together, or none would finish."""
        if self.world > 1:
            flag = torch.tensor([float(self._stop_requested)], dtype=torch.float64)
            self._stop_requested = bool(all_reduce_sum(flag)[0] > 0)

    @torch.no_grad()
    def _score(self, archs, images, labels) -> np.ndarray:
        """Mini-batch loss of each candidate, without gradients, dropout or stochastic depth (a
        candidate's score is a property of its weights, not of a random mask) and without touching
        BN statistics."""
        with _bn_statistics_frozen(self.model), regularisation_off(self.model):
            losses = torch.tensor([float(label_loss(self.model(resize(images, a.resolution), a), labels))
                                   for a in archs], dtype=torch.float64)
        # every process must choose the same subnet: score on the global batch
        return (all_reduce_sum(losses) / self.world).numpy()

    def _enter_phase(self, phase: str) -> None:
        """Take the teacher snapshot and re-order channels where the strategy's phases ask for them."""
        if phase == self.phase:
            return
        previous, self.phase = self.phase, phase
        if phase in self.strategy.teacher_phases():
            self._snapshot_teacher()  # once; a resumed run restores it from the checkpoint
        if previous is not None and phase in self.strategy.reorder_phases():
            reorder_channels(self.model, self.optimizer)

    def _snapshot_teacher(self) -> None:
        """A frozen copy of the max subnet, its BN recalibrated: the shared running statistics
        lag fast-moving weights early in training and would make a useless teacher."""
        if self.teacher is not None:
            return
        data = self.eval_data or EvalData.from_datasets(
            self.train_set, None, calibration_images=self.train_cfg.bn_calibration_images, seed=self.train_cfg.seed,
            calibration_batch_size=self.train_cfg.bn_calibration_batch_size)
        self.teacher = self._layout(calibrated_subnet(self.model, self.space.max(), data).requires_grad_(False))
        self.model.train()

    # ----- checkpoints -------------------------------------------------------------------
    def _save(self) -> None:
        if self.rank != 0:
            return
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "sampler": self.strategy.state_dict(),
            "teacher": None if self.teacher is None else self.teacher.state_dict(),
            "phase": self.phase,
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "epoch_losses": list(self._epoch_losses),
            "history": self.history,
            "experiment": self.experiment,
            "space_fingerprint": self.space.fingerprint,
            "supernet_name": self.space.name,
        }
        save_checkpoint(self.run_dir / CHECKPOINT, state)

    def _restore(self, state: dict) -> None:
        if not self.strategy.matches(state["sampler"]):
            raise ConfigError(f"checkpoint was trained with sampler {state['sampler']}, "
                              f"not {self.strategy.state_dict()}; resume with the run's own config")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if state["teacher"] is not None:
            self.teacher = self._layout(self.model.extract(self.space.max()).eval().requires_grad_(False))
            self.teacher.load_state_dict(state["teacher"])
        self.phase = state["phase"]
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.epoch, self.step_in_epoch = state["epoch"], state["step_in_epoch"]
        self._epoch_losses = list(state["epoch_losses"])
        self.history = list(state["history"])
        if state["experiment"].get("optim") != self.experiment.get("optim"):
            self._rebase_learning_rate()  # a diverged run resumed with a fixed optim.lr or warm-up

    def _rebase_learning_rate(self) -> None:
        """The restored optimiser and schedule follow this config's ``optim.lr`` (and warm-up, which
        the schedule reads from the config) from the restored step on."""
        lr = self.optim_cfg.lr * self.scheduler.lr_lambdas[0](self.scheduler.last_epoch)
        self.scheduler.base_lrs = [self.optim_cfg.lr] * len(self.optimizer.param_groups)
        for group in self.optimizer.param_groups:
            group["initial_lr"], group["lr"] = self.optim_cfg.lr, lr
        self.scheduler._last_lr = [lr] * len(self.optimizer.param_groups)


def write_metrics(run_dir: Path, history: list[dict]) -> None:
    """``metrics.csv`` and ``training_curves.png`` from the per-epoch records."""
    frame = pd.DataFrame(history)
    atomic_write_text(run_dir / METRICS, frame.to_csv(index=False))
    plot_training_curves(frame, run_dir / TRAINING_CURVES)


def plot_training_curves(frame: pd.DataFrame, path: Path) -> None:
    fig, (left, right) = pyplot().subplots(1, 2, figsize=(10, 3.8))
    left.plot(frame["epoch"], frame["train_loss"], marker="o")
    left.set(xlabel="epoch", ylabel="mean loss of the step's subnets", title="training loss")
    for name in ("max", "middle", "min"):
        column = f"val_top1_{name}"
        if column in frame:
            right.plot(frame["epoch"], frame[column], marker="o", label=f"{name} subnet")
    right.set(xlabel="epoch", ylabel="validation top-1 (%)", title="validation accuracy (BN recalibrated)")
    if right.lines:
        right.legend()
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=110)


__all__ = ["OptimConfig", "SamplerConfig", "TrainConfig", "Trainer", "TrainingInterrupted"]
