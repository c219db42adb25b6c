"""Evaluation of subnets with exactly recalibrated batch norm.

Running statistics of a shared supernet fit no particular subnet, so every evaluation
first recomputes them for the subnet: on an extracted copy (the supernet's buffers are
never touched), as the plain average over a fixed, seeded subset of training images in
fixed batches (momentum ``None``), reduced across processes in a distributed run. A subnet
without batch norm (a ViT normalises with LayerNorm, which keeps no statistics) needs none:
recalibration returns it untouched, with no forward pass, and says so once on the
``elasticnas`` logger.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from elasticnas.core.distributed import all_reduce_mean_, all_reduce_sum, rank_and_world
from elasticnas.supernet.arch import Arch
from elasticnas.supernet.batches import iterate, resize
from elasticnas.supernet.losses import per_position
from elasticnas.supernet.memory_layout import channels_last, default_layout


@dataclass(frozen=True)
class EvalResult:
    top1: float  # percent (of tokens, for a sequence model: next-token accuracy)
    loss: float  # mean cross-entropy (nats; per token for a sequence model)
    images: int  # images scored (tokens, for a sequence model)
    # Top-1 on the even- and the odd-numbered images: two disjoint halves, so the agreement of
    # the halves over many subnets is the measurement's own test-retest ceiling.
    top1_halves: tuple[float, float] = (float("nan"), float("nan"))
    # The mean loss on the same two halves, and its standard error over the images (windows, for a
    # sequence model: the positions of one window are not independent draws)
    loss_halves: tuple[float, float] = (float("nan"), float("nan"))
    loss_se: float = float("nan")

    @property
    def bits(self) -> float:
        """The loss in bits: bits per byte for a byte-level language model."""
        return self.loss / math.log(2)

    @property
    def bits_halves(self) -> tuple[float, float]:
        return tuple(loss / math.log(2) for loss in self.loss_halves)

    @property
    def bits_se(self) -> float:
        return self.loss_se / math.log(2)

    @property
    def top1_se(self) -> float:
        """Standard error of ``top1`` (percentage points) over a random draw of as many images."""
        share = self.top1 / 100.0
        return 100.0 * math.sqrt(share * (1.0 - share) / self.images) if self.images else float("nan")


class EvalData:
    """Calibration images and evaluation batches, loaded once and resized once per resolution.

    >>> data = EvalData.from_datasets(train_set, val_set, calibration_images=2000)  # doctest: +SKIP
    """

    def __init__(self, calibration: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, *,
                 calibration_batch_size: int = 250, eval_batch_size: int = 500):
        rank, world = rank_and_world()
        # Each process recalibrates on whole batches (batch b goes to process b mod world), so
        # the averaged statistics are those of one process over the same batches.
        batches = torch.arange(len(calibration)).split(calibration_batch_size)
        mine = [b for i, b in enumerate(batches) if i % world == rank]
        self.calibration = calibration[torch.cat(mine)] if mine else calibration[:0]
        self.images, self.labels = images[rank::world], labels[rank::world]
        self.calibration_batch_size, self.eval_batch_size = calibration_batch_size, eval_batch_size
        self._resized: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def from_datasets(cls, train: Dataset, evaluation: Dataset | None, *, calibration_images: int = 2000,
                      seed: int = 0, calibration_batch_size: int = 250, eval_batch_size: int = 500) -> EvalData:
        """``evaluation=None`` gives calibration images only (enough for :func:`calibrated_subnet`)."""
        order = torch.from_numpy(np.random.default_rng(seed).permutation(len(train))[:calibration_images])
        calibration = torch.cat([x for x, _ in iterate(train, order, calibration_batch_size)])
        if evaluation is None:
            images, labels = calibration[:0], torch.zeros(0, dtype=torch.long)
        else:
            batches = list(iterate(evaluation, torch.arange(len(evaluation)), eval_batch_size))
            images, labels = torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])
        return cls(calibration, images, labels, calibration_batch_size=calibration_batch_size,
                   eval_batch_size=eval_batch_size)

    def at(self, resolution: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Calibration and evaluation images at ``resolution`` on ``device`` (cached)."""
        if resolution not in self._resized:
            self._resized[resolution] = (resize(self.calibration, resolution).to(device),
                                         resize(self.images, resolution).to(device))
        return self._resized[resolution]


def batch_norms(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@cache
def _say_nothing_to_recalibrate() -> None:
    logging.getLogger(__name__).info("batch-norm recalibration skipped: the subnet has no batch norm "
                                     "(LayerNorm keeps no running statistics)")


@torch.no_grad()
def recalibrate_bn(model: nn.Module, images: torch.Tensor, batch_size: int = 250) -> nn.Module:
    """Replace every batch norm's running statistics by their average over ``images``
    (a model without batch norm is returned as it is)."""
    norms = batch_norms(model)
    if not norms:
        _say_nothing_to_recalibrate()
        return model
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: every batch counts equally
    was_training = model.training
    model.train()
    for start in range(0, len(images), batch_size):
        model(images[start : start + batch_size])
    all_reduce_mean_([t for m in norms for t in (m.running_mean, m.running_var)])  # equal batch counts per process
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    return model.train(was_training)


def calibrated_subnet(supernet: nn.Module, arch: Arch, data: EvalData) -> nn.Module:
    """The static model of ``arch`` with batch norm recalibrated, in eval mode."""
    return default_layout(_calibrated_channels_last(supernet, arch, data))


def _calibrated_channels_last(supernet: nn.Module, arch: Arch, data: EvalData) -> nn.Module:
    """:func:`calibrated_subnet`, left channels-last for the caller that scores it next."""
    device = next(supernet.parameters()).device
    calibration, _ = data.at(arch.resolution, device)
    model = channels_last(supernet.extract(arch))
    return recalibrate_bn(model, calibration, data.calibration_batch_size).eval()


@torch.no_grad()
def evaluate(supernet: nn.Module, arch: Arch, data: EvalData) -> EvalResult:
    """Top-1 (%) and loss of ``arch`` after exact BN recalibration; the supernet is unchanged."""
    return evaluate_many(supernet, [arch], data)[0]


@torch.no_grad()
def evaluate_many(supernet: nn.Module, archs: Sequence[Arch], data: EvalData) -> list[EvalResult]:
    """Evaluate several architectures, resizing and loading the data once per resolution."""
    device = next(supernet.parameters()).device
    results = []
    for arch in archs:
        model = _calibrated_channels_last(supernet, arch, data)
        _, images = data.at(arch.resolution, device)
        results.append(score(model, images, data.labels.to(device), data.eval_batch_size))
    return results


@torch.no_grad()
def score(model: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, labels: torch.Tensor,
          batch_size: int = 500) -> EvalResult:
    """Top-1 and mean loss of any callable from images to logits (a module, a runtime's model),
    per token for a sequence model (its labels cut to the tokens it read), summed over the
    processes of a distributed run (each holding images ``rank::world``, as :class:`EvalData`
    shards them), with the top-1 and loss of each half of the images and the loss's standard error."""
    rank, world = rank_and_world()
    # correct, loss, count; correct, loss and count of the odd half; images, sum and sum of
    # squares of their mean losses
    totals = torch.zeros(9, dtype=torch.float64, device=images.device)
    for start in range(0, len(images), batch_size):
        logits = model(images[start : start + batch_size]).float().to(images.device)
        target = labels[start : start + batch_size]
        odd = (rank + world * torch.arange(start, start + len(target), device=images.device)) % 2 == 1
        per_image = 1
        if logits.dim() == 3:  # a sequence model: every position predicts its next token; halves by window
            per_image = logits.shape[1]
            odd = odd.repeat_interleave(per_image)
            logits, target = per_position(logits, target)
        right = logits.argmax(1) == target
        losses = F.cross_entropy(logits, target, reduction="none").double()
        image_losses = losses.view(-1, per_image).mean(1)
        parts = (right.sum(), losses.sum(), len(target), right[odd].sum(), losses[odd].sum(), odd.sum(),
                 len(image_losses), image_losses.sum(), image_losses.square().sum())
        totals += torch.stack([torch.as_tensor(part).to(totals) for part in parts])
    (correct, loss, count, correct_odd, loss_odd, count_odd, n_images, image_sum,
     image_squares) = all_reduce_sum(totals).tolist()
    count_even = count - count_odd
    halves = tuple(100.0 * c / n if n else float("nan")
                   for c, n in ((correct - correct_odd, count_even), (correct_odd, count_odd)))
    loss_halves = tuple(v / n if n else float("nan") for v, n in ((loss - loss_odd, count_even), (loss_odd, count_odd)))
    spread = max(image_squares / n_images - (image_sum / n_images) ** 2, 0.0) if n_images else float("nan")
    loss_se = math.sqrt(spread * n_images / (n_images - 1) / n_images) if n_images > 1 else float("nan")
    return EvalResult(top1=100.0 * correct / count, loss=loss / count, images=int(count), top1_halves=halves,
                      loss_halves=loss_halves, loss_se=loss_se)
