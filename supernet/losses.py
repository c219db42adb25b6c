"""Losses: cross-entropy on labels and distillation losses for in-place distillation.

A sequence model's logits (batch, tokens, classes) count one row per position, its labels one
per token; a teacher's logits or labels over a longer context are cut to the student's first
tokens, which a causal model's logits for those tokens do not depend on beyond.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from elasticnas.core.errors import unknown_name


def per_position(student_logits: Tensor, other: Tensor) -> tuple[Tensor, Tensor]:
    """Sequence logits and ``other`` (teacher logits or labels) one row per position; other logits as they are."""
    if student_logits.dim() != 3:
        return student_logits, other
    return student_logits.flatten(0, 1), other[:, : student_logits.shape[1]].flatten(0, 1)


def label_loss(logits: Tensor, labels: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Mean cross-entropy against the labels (every position of a sequence model)."""
    logits, labels = per_position(logits, labels)
    return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)


def kl_divergence(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """KL(teacher || student), averaged over the batch (over positions too, for sequence models)."""
    student_logits, teacher_logits = per_position(student_logits, teacher_logits)
    return F.kl_div(F.log_softmax(student_logits, 1), F.log_softmax(teacher_logits, 1), reduction="batchmean",
                    log_target=True)


def alpha_divergence(student_logits: Tensor, teacher_logits: Tensor, alpha: float, clip: float = 5.0) -> Tensor:
    """D_alpha(teacher || student) (Amari's alpha-divergence); alpha=1 is KL(teacher || student).

    The density ratio teacher/student is clipped to ``[0, clip]`` as AlphaNet does, so that
    negative alphas cannot blow up where the student puts almost no mass.
    """
    student_logits, teacher_logits = per_position(student_logits, teacher_logits)
    if abs(alpha - 1.0) < 1e-8:
        return kl_divergence(student_logits, teacher_logits)
    log_q = F.log_softmax(student_logits, 1)
    log_p = F.log_softmax(teacher_logits, 1)
    if abs(alpha) < 1e-8:
        return kl_divergence(teacher_logits, student_logits)
    ratio = torch.exp(log_p - log_q).clamp(max=clip)
    q = log_q.exp()
    return ((q * (ratio**alpha - 1)).sum(1) / (alpha * (alpha - 1))).mean()


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor, kind: str = "kl",
                      alpha_min: float = -1.0, alpha_max: float = 1.0) -> Tensor:
    """``kind="kl"``, or ``"alpha"``: AlphaNet's adaptive max of the alpha_min and alpha_max divergences."""
    if kind == "kl":
        return kl_divergence(student_logits, teacher_logits)
    if kind == "alpha":
        return torch.maximum(alpha_divergence(student_logits, teacher_logits, alpha_min),
                             alpha_divergence(student_logits, teacher_logits, alpha_max))
    raise unknown_name("distillation loss", kind, ("kl", "alpha"))
