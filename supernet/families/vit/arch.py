"""A Vision Transformer subnet: resolution, embedding width, depth, heads and MLP ratio per layer.

There are ``max(depth_choices)`` layer slots; the heads and MLP ratios of the slots that the
depth leaves out are 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from elasticnas.supernet.arch import Arch, normalise_layer_stack


@dataclass(frozen=True)
class ViTArch(Arch):
    """One subnet of a ViT space.

    >>> a = ViTArch(resolution=224, embed_dim=192, depth=2, num_heads=(3, 3, 4), mlp_ratios=(4, 3.5, 4))
    >>> a.num_heads, a.mlp_ratios
    ((3, 3, 0), (4, 3.5, 0))
    """

    embed_dim: int  # width of every token, in every layer
    depth: int  # transformer layers that run (the first ``depth`` slots)
    num_heads: tuple[int, ...]  # attention heads per layer slot (qkv width = heads x head dim)
    mlp_ratios: tuple[int | float, ...]  # MLP hidden width / embedding width, per layer slot

    def __post_init__(self) -> None:
        super().__post_init__()
        normalise_layer_stack(self, "embed_dim", {"num_heads": True, "mlp_ratios": False})
