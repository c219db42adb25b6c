"""Channel re-ordering by importance, done before elastic widths shrink.

Smaller expand ratios keep the *leading* hidden channels, so Once-for-All sorts each block's
hidden channels by importance (L1 norm of the weights that read them) before training
smaller ratios. A permutation of hidden channels leaves the full network's function
unchanged; optimizer state is permuted along so training continues seamlessly. Each
family's blocks say what to permute (:meth:`ElasticBlock.sort_channels`); the helpers here
do the permuting.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from elasticnas.supernet.module import ElasticBlock


def permute_(param: Tensor, perm: Tensor, dim: int, optimizer: torch.optim.Optimizer | None) -> None:
    """Permute ``param`` along ``dim`` in place, with its optimizer state of the same shape."""
    param.data.copy_(param.data.index_select(dim, perm))
    if optimizer is None or not isinstance(param, nn.Parameter):
        return
    for value in optimizer.state.get(param, {}).values():
        if isinstance(value, Tensor) and value.shape == param.shape:
            value.copy_(value.index_select(dim, perm))


def permute_bn_(bn: nn.BatchNorm2d, perm: Tensor, optimizer: torch.optim.Optimizer | None) -> None:
    for tensor in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
        permute_(tensor, perm, 0, optimizer)


def importance_order(weight: Tensor, dim: int) -> Tensor:
    """Channels along ``dim`` sorted by the L1 norm of ``weight`` over its other dims, largest first."""
    others = tuple(d for d in range(weight.dim()) if d != dim)
    return weight.abs().sum(dim=others).argsort(descending=True, stable=True)


@torch.no_grad()
def reorder_channels(supernet: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict[str, Tensor]:
    """Sort every elastic block's hidden channels by importance; returns each block's permutation."""
    applied = {}
    for name, block in supernet.named_modules():
        if isinstance(block, ElasticBlock):
            perm = block.sort_channels(optimizer)
            if perm is not None:
                applied[name] = perm
    return applied
