"""Fine-tuning one extracted subnet, distilled from the supernet's largest subnet.

A subnet inherits weights that were trained shared with every other subnet; a few epochs on
its own, with the largest subnet as teacher (BigNAS and OFA fine-tune the same way), adapt
them to this one network. The teacher is frozen in eval mode and sees the images at its own
resolution, the student at the subnet's. The loss mixes the KL divergence to the teacher's
predictions with the labels' cross-entropy. Batch norm statistics drift with momentum while
training, so the caller recalibrates them exactly afterwards, as for any measured subnet.
An epoch ends with a checkpoint; a run stopped in between resumes from the last one.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from elasticnas.core.checkpoint import load_checkpoint, save_checkpoint
from elasticnas.core.config import require_range
from elasticnas.core.errors import ConfigError
from elasticnas.supernet.batches import epoch_order, iterate, resize
from elasticnas.supernet.losses import kl_divergence, label_loss
from elasticnas.supernet.training import parameter_groups, warmup_cosine


@dataclass(frozen=True)
class FinetuneConfig:
    epochs: int = 3
    lr: float = 0.005  # start of a cosine decay to zero over all steps (SGD, Nesterov momentum 0.9)
    batch_size: int = 128
    weight_decay: float = 4e-5  # on convolution and linear weights only
    distill_weight: float = 0.5  # loss = w * KL(teacher || student) + (1 - w) * cross-entropy
    grad_clip: float | None = 5.0
    seed: int = 0

    def __post_init__(self) -> None:
        require_range("fine-tuning lr", self.lr, above=0)
        require_range("fine-tuning weight_decay", self.weight_decay, low=0)
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0 or not 0 <= self.distill_weight <= 1:
            raise ConfigError(f"fine-tuning needs epochs >= 1, batch_size >= 1, lr > 0 and 0 <= distill_weight "
                              f"<= 1; got epochs={self.epochs}, batch_size={self.batch_size}, lr={self.lr}, "
                              f"distill_weight={self.distill_weight}")


def finetune(student: nn.Module, teacher: nn.Module, train_set: Dataset, *, resolution: int,
             teacher_resolution: int, config: FinetuneConfig, checkpoint: Path,
             identity: dict | None = None, progress: bool = True) -> list[dict]:
    """Train ``student`` in place; returns one record per epoch (mean loss, learning rate, seconds).

    ``checkpoint``: written after every epoch, and resumed from when it exists and was written
    for the same ``config`` and ``identity`` (e.g. the subnet and where it came from).
    """
    teacher.eval().requires_grad_(False)
    groups = parameter_groups(student, config.weight_decay)
    optimizer = torch.optim.SGD(groups, lr=config.lr, momentum=0.9, nesterov=True)
    steps_per_epoch = max(1, len(train_set) // config.batch_size)
    total = config.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(step, total, 0, 0.0))
    stamp = {"config": asdict(config), "identity": identity or {}}
    history, start = _resume(checkpoint, stamp, student, optimizer, scheduler)
    for epoch in range(start, config.epochs):
        started = time.perf_counter()
        order = epoch_order(len(train_set), config.seed, epoch)[: steps_per_epoch * config.batch_size]
        losses = []
        student.train()
        bar = tqdm(iterate(train_set, order, config.batch_size), total=steps_per_epoch, disable=not progress,
                   desc=f"fine-tuning, epoch {epoch + 1}/{config.epochs}", unit="step", leave=False)
        for images, labels in bar:
            losses.append(_step(student, teacher, images, labels, resolution, teacher_resolution, config,
                                optimizer, scheduler))
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)),
                        "lr_end": scheduler.get_last_lr()[0], "seconds": time.perf_counter() - started})
        save_checkpoint(checkpoint, {**stamp, "model": student.state_dict(), "optimizer": optimizer.state_dict(),
                                     "scheduler": scheduler.state_dict(), "history": history})
    return history


def _step(student: nn.Module, teacher: nn.Module, images: torch.Tensor, labels: torch.Tensor, resolution: int,
          teacher_resolution: int, config: FinetuneConfig, optimizer, scheduler) -> float:
    device = next(student.parameters()).device
    images, labels = images.to(device), labels.to(device)
    with torch.no_grad():
        soft_targets = teacher(resize(images, teacher_resolution)).float()
    logits = student(resize(images, resolution)).float()
    loss = (config.distill_weight * kl_divergence(logits, soft_targets)
            + (1 - config.distill_weight) * label_loss(logits, labels))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip:
        torch.nn.utils.clip_grad_norm_(student.parameters(), config.grad_clip)
    optimizer.step()
    scheduler.step()
    return float(loss.detach())


def _resume(checkpoint: Path, stamp: dict, student: nn.Module, optimizer, scheduler) -> tuple[list[dict], int]:
    """The history so far and the epoch to start at: 0 without a checkpoint of this same job."""
    if not checkpoint.exists():
        return [], 0
    state = load_checkpoint(checkpoint)
    if state.get("config") != stamp["config"] or state.get("identity") != stamp["identity"]:
        raise ConfigError(f"{checkpoint} holds an unfinished fine-tuning with other settings "
                          f"({state.get('config')}); delete it or choose another --out")
    student.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return list(state["history"]), len(state["history"])

