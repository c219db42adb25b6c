"""Channel re-ordering by importance, done before elastic widths shrink.

Smaller expand ratios keep the *leading* middle channels, so Once-for-All sorts each
block's middle channels by importance (L1 norm of the projecting weights that read them)
before training smaller ratios. A permutation of hidden channels leaves the full network's
function unchanged; optimizer state is permuted along so training continues seamlessly.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _permute(param: Tensor, perm: Tensor, dim: int, optimizer: torch.optim.Optimizer | None) -> None:
    param.data.copy_(param.data.index_select(dim, perm))
    if optimizer is None or not isinstance(param, nn.Parameter):
        return
    for value in optimizer.state.get(param, {}).values():
        if isinstance(value, Tensor) and value.shape == param.shape:
            value.copy_(value.index_select(dim, perm))


def _permute_bn(bn: nn.BatchNorm2d, perm: Tensor, optimizer) -> None:
    for tensor in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
        _permute(tensor, perm, 0, optimizer)


@torch.no_grad()
def reorder_channels(supernet: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict[str, Tensor]:
    """Sort every elastic block's middle (and squeeze-excite hidden) channels by importance.

    Returns the permutation applied to each block, keyed by module name.
    """
    from elasticnas.supernet.mobilenetv3 import ElasticMBConv

    applied = {}
    for name, block in supernet.named_modules():
        if not isinstance(block, ElasticMBConv) or block.expand is None:
            continue
        if block.se is not None:
            se = block.se
            hidden_perm = se.expand_weight.abs().sum(dim=(0, 2, 3)).argsort(descending=True, stable=True)
            _permute(se.reduce_weight, hidden_perm, 0, optimizer)
            _permute(se.reduce_bias, hidden_perm, 0, optimizer)
            _permute(se.expand_weight, hidden_perm, 1, optimizer)
        importance = block.project.conv.weight.abs().sum(dim=(0, 2, 3))
        perm = importance.argsort(descending=True, stable=True)
        _permute(block.expand.conv.weight, perm, 0, optimizer)
        _permute_bn(block.expand.bn, perm, optimizer)
        _permute(block.depthwise.conv.weight, perm, 0, optimizer)
        _permute_bn(block.depthwise.bn, perm, optimizer)
        if block.se is not None:
            _permute(block.se.reduce_weight, perm, 1, optimizer)
            _permute(block.se.expand_weight, perm, 0, optimizer)
            _permute(block.se.expand_bias, perm, 0, optimizer)
        _permute(block.project.conv.weight, perm, 1, optimizer)
        applied[name] = perm
    return applied
