"""Minitron's activation-based importance: order heads and MLP units by what they output on calibration text.

A trained (or imported) decoder is made nested by putting its most important key/value groups
and MLP units first, so every leading slice keeps what matters most. Importance is measured on
the largest subnet over calibration tokens: an MLP unit's is the mean absolute value of its
activation (after the GELU, or ``silu(gate) x up``), a query head's the mean L2 norm of its
attention output, and a key/value group's the sum over its query heads (the group moves as one).
The permutation leaves the largest subnet's function unchanged; the smaller ones change, which
is the point.
"""

from __future__ import annotations

import torch
from torch import Tensor

from elasticnas.core.errors import ConfigError


@torch.no_grad()
def activation_importance(supernet, tokens: Tensor, batch_size: int = 8) -> list[tuple[Tensor, Tensor]]:
    """Per decoder layer of the largest subnet: ``(group scores, unit scores)`` over ``tokens`` (rows, tokens)."""
    if tokens.dim() != 2 or not len(tokens):
        raise ConfigError(f"calibration tokens must be a non-empty (rows, tokens) tensor, "
                          f"got shape {tuple(tokens.shape)}")
    (embed, embed_spec), *layers, _ = supernet._layers(supernet.space.max())
    group = supernet.space.kv_group
    scores = [(torch.zeros(spec.kv_heads), torch.zeros(spec.mlp_hidden)) for _, spec in layers]
    device = next(supernet.parameters()).device
    for batch in tokens.to(device).split(batch_size):
        x = embed.run(batch, embed_spec)
        for (layer, spec), (heads, units) in zip(layers, scores, strict=True):
            probe = {}
            x = layer.run(x, spec, probe=probe)
            per_head = probe["heads"].norm(dim=-1).sum(dim=(0, 1)).float().cpu()  # (batch, tokens, heads) -> (heads,)
            heads += per_head.reshape(-1, group).sum(dim=1)
            units += probe["units"].abs().sum(dim=(0, 1)).float().cpu()
    count = tokens.numel()
    return [(heads / count, units / count) for heads, units in scores]


@torch.no_grad()
def reorder_by_activations(supernet, tokens: Tensor, optimizer: torch.optim.Optimizer | None = None,
                           batch_size: int = 8) -> list[tuple[Tensor, Tensor]]:
    """Put each layer's most important key/value groups and MLP units first (optimizer state moves
    along); returns each layer's ``(group order, unit order)``."""
    orders = []
    for block, (heads, units) in zip(supernet.blocks, activation_importance(supernet, tokens, batch_size),
                                     strict=True):
        order = (heads.argsort(descending=True, stable=True), units.argsort(descending=True, stable=True))
        block.permute_units(*order, optimizer)
        orders.append(order)
    return orders
