"""Distillation losses for in-place distillation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from elasticnas.core.errors import unknown_name


def kl_divergence(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """KL(teacher || student), averaged over the batch."""
    return F.kl_div(F.log_softmax(student_logits, 1), F.log_softmax(teacher_logits, 1), reduction="batchmean",
                    log_target=True)


def alpha_divergence(student_logits: Tensor, teacher_logits: Tensor, alpha: float, clip: float = 5.0) -> Tensor:
    """D_alpha(teacher || student) (Amari's alpha-divergence); alpha=1 is KL(teacher || student).

    The density ratio teacher/student is clipped to ``[0, clip]`` as AlphaNet does, so that
    negative alphas cannot blow up where the student puts almost no mass.
    """
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
