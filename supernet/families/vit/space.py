"""The ViT search space (AutoFormer's): resolution, embedding width, depth, heads and MLP ratio per layer.

Genes, in order: the resolution, the embedding width (one for the whole network: it is the
token width every layer reads and writes), the depth, then the heads of each layer slot and
the MLP ratio of each layer slot; a slot's genes are active when the depth reaches it. The
head width is fixed (``head_dim``), so the attention width is ``heads x head_dim``; the MLP
hidden width is ``int(embed_dim x mlp_ratio)``, as in AutoFormer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from elasticnas.core.errors import ConfigError, InvalidArchitectureError
from elasticnas.supernet.families.vit.arch import ViTArch
from elasticnas.supernet.families.vit.layers import ClassTokenSpec, PatchEmbedSpec, TransformerLayerSpec
from elasticnas.supernet.layer_stack import stack_genes, stack_slots
from elasticnas.supernet.space import (
    Gene,
    LayerSlot,
    SearchSpace,
    check_classes_and_channels,
    normalise_fields,
    sorted_choices,
)
from elasticnas.supernet.specs import LinearSpec


@dataclass(frozen=True)
class ViTSpace(SearchSpace):
    """Skeleton and choices of an elastic Vision Transformer with a class token."""

    arch_type: ClassVar[type] = ViTArch
    shrink_order: ClassVar[tuple[str, ...]] = ("depth", "expand", "heads", "width")
    reorder_dimensions: ClassVar[tuple[str, ...]] = ("expand",)  # MLP hidden units are sorted before they shrink

    name: str
    num_classes: int
    in_channels: int
    patch_size: int
    resolutions: tuple[int, ...]  # each a multiple of the patch size
    embed_choices: tuple[int, ...]
    depth_choices: tuple[int, ...]
    head_choices: tuple[int, ...]
    mlp_ratio_choices: tuple[float, ...]
    head_dim: int = 64
    qkv_bias: bool = True
    # initialisation of the position embeddings: timm's 0.02 suits ImageNet-length schedules; on a few
    # thousand small images a larger start lets attention tell positions apart early (see tiny_vit)
    pos_embed_std: float = 0.02
    drop_path: float = 0.0  # stochastic depth rate of every layer, in training only (uniform, as in CaiT)
    dropout: float = 0.0  # before the classifier, in training only
    norm_eps: float = 1e-6
    bn_momentum: float = 0.1  # unused: a ViT has no batch norm
    bn_eps: float = 1e-5  # unused: a ViT has no batch norm
    family: str = "vit"

    def __post_init__(self) -> None:
        normalise_fields(self)
        sorted_choices(self, "resolutions", "embed_choices", "depth_choices", "head_choices", "mlp_ratio_choices")
        check_classes_and_channels(self)
        off_grid = [r for r in self.resolutions if r % self.patch_size]
        if self.patch_size < 1 or off_grid:
            raise ConfigError(f"resolutions must be multiples of patch_size={self.patch_size}, but {off_grid} are not")
        if min(self.depth_choices) < 1 or min(self.head_choices) < 1 or self.head_dim < 1:
            raise ConfigError(f"depth_choices, head_choices and head_dim must be >= 1, but got "
                              f"{list(self.depth_choices)}, {list(self.head_choices)} and {self.head_dim}")
        if not 0.0 <= self.drop_path < 1.0 or not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"drop_path and dropout must be in [0, 1), but got {self.drop_path} and {self.dropout}")
        if self.pos_embed_std <= 0:
            raise ConfigError(f"pos_embed_std must be > 0, but got {self.pos_embed_std}")
        for embed in self.embed_choices:
            hidden = [self.mlp_hidden(embed, r) for r in self.mlp_ratio_choices]
            if min(hidden) < 1 or len(set(hidden)) != len(hidden):
                raise ConfigError(f"mlp_ratio_choices {list(self.mlp_ratio_choices)} give MLP widths {hidden} for "
                                  f"embedding width {embed}; each must be distinct and >= 1")

    @property
    def max_depth(self) -> int:
        return max(self.depth_choices)

    def mlp_hidden(self, embed: int, ratio: float) -> int:
        return int(embed * ratio)

    def tokens(self, resolution: int) -> int:
        return (resolution // self.patch_size) ** 2 + 1

    # ----- dict forms ------------------------------------------------------------------------
    def arch_from_dict(self, data: Mapping[str, Any]) -> ViTArch:
        """The native form, or AutoFormer's (``layer_num``; ``embed_dim``, ``num_heads`` and ``mlp_ratio``
        with one entry per layer, the embedding width equal in all; optional ``resolution``)."""
        if not isinstance(data, Mapping) or "layer_num" not in data:
            return super().arch_from_dict(data)
        keys = {"layer_num", "embed_dim", "num_heads", "mlp_ratio"}
        if not keys <= set(data) or set(data) - keys - {"resolution"}:
            raise InvalidArchitectureError(f"an AutoFormer architecture has the keys {sorted(keys)} (and optionally "
                                           f"'resolution'), but got {sorted(data)}")
        depth = data["layer_num"]
        lists = [data[k] if isinstance(data[k], (list, tuple)) else [] for k in ("embed_dim", "num_heads", "mlp_ratio")]
        if not isinstance(depth, int) or any(len(v) != depth for v in lists) or len(set(lists[0])) != 1:
            raise InvalidArchitectureError(f"embed_dim, num_heads and mlp_ratio need one entry per layer "
                                           f"(layer_num={depth!r}), the embedding width the same in every layer")
        padding = [0] * (self.max_depth - depth)
        return ViTArch(data.get("resolution", max(self.resolutions)), lists[0][0], depth,
                       (*lists[1], *padding), (*lists[2], *padding))

    def to_foreign_dict(self, arch: ViTArch) -> dict[str, Any]:
        arch = self.canonical(arch)
        depth = arch.depth
        return {"layer_num": depth, "embed_dim": [arch.embed_dim] * depth, "num_heads": list(arch.num_heads[:depth]),
                "mlp_ratio": list(arch.mlp_ratios[:depth]), "resolution": arch.resolution}

    # ----- the seam ---------------------------------------------------------------------------
    def _declare_genes(self) -> tuple[Gene, ...]:
        return stack_genes(self.resolutions, ("embed_dim", self.embed_choices), self.depth_choices,
                           [("num_heads", "heads", self.head_choices),
                            ("mlp_ratios", "expand", self.mlp_ratio_choices)])

    def _declare_layers(self) -> tuple[LayerSlot, ...]:
        def layer(r, e, heads, ratio):
            return TransformerLayerSpec(e, heads, self.head_dim, self.mlp_hidden(e, ratio), self.tokens(r),
                                        self.qkv_bias, self.drop_path, self.norm_eps)

        return (LayerSlot((0, 1), lambda r, e: PatchEmbedSpec(self.in_channels, e, self.patch_size, r,
                                                              self.pos_embed_std)),
                *stack_slots(self.depth_choices, 2, layer),
                LayerSlot((0, 1), lambda r, e: ClassTokenSpec(e, self.tokens(r), self.norm_eps)),
                LayerSlot((1,), lambda e: LinearSpec(e, self.num_classes, self.dropout)))
