"""A decoder-only language model subnet: context length, embedding width, depth, heads and MLP width per layer.

``resolution`` is the context length (tokens) at which the subnet is costed and timed: the
sequence plays the part an image's side plays for the vision families. There are
``max(depth_choices)`` layer slots; the heads and MLP widths of the slots that the depth
leaves out are 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from elasticnas.supernet.arch import Arch, normalise_layer_stack


@dataclass(frozen=True)
class DecoderArch(Arch):
    """One subnet of a decoder space.

    >>> a = DecoderArch(resolution=256, embed_dim=128, depth=2, num_heads=(4, 2, 4), mlp_hidden=(512, 256, 512))
    >>> a.num_heads, a.mlp_hidden
    ((4, 2, 0), (512, 256, 0))
    """

    embed_dim: int  # width of the residual stream, in every layer
    depth: int  # decoder layers that run (the first ``depth`` slots)
    num_heads: tuple[int, ...]  # query heads per layer slot
    mlp_hidden: tuple[int, ...]  # MLP hidden units per layer slot

    def __post_init__(self) -> None:
        super().__post_init__()
        normalise_layer_stack(self, "embed_dim", {"num_heads": True, "mlp_hidden": True})
