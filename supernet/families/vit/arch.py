"""A Vision Transformer subnet: resolution, embedding width, depth, heads and MLP ratio per layer.

There are ``max(depth_choices)`` layer slots; the heads and MLP ratios of the slots that the
depth leaves out are 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from elasticnas.core.errors import InvalidArchitectureError
from elasticnas.supernet.arch import INACTIVE, Arch, as_int, as_numbers


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
        embed, depth = as_int(self.embed_dim, "embed_dim"), as_int(self.depth, "depth")
        heads = as_numbers(self.num_heads, "num_heads", integers=True)
        ratios = as_numbers(self.mlp_ratios, "mlp_ratios")
        if len(heads) != len(ratios):
            raise InvalidArchitectureError(f"num_heads and mlp_ratios need one entry per layer slot, "
                                           f"but got {len(heads)} and {len(ratios)}")
        if not 0 <= depth <= len(heads):
            raise InvalidArchitectureError(f"depth={depth} is outside 0..{len(heads)} (the layer slots)")
        object.__setattr__(self, "embed_dim", embed)
        object.__setattr__(self, "depth", depth)
        object.__setattr__(self, "num_heads", tuple(h if i < depth else INACTIVE for i, h in enumerate(heads)))
        object.__setattr__(self, "mlp_ratios", tuple(r if i < depth else INACTIVE for i, r in enumerate(ratios)))
