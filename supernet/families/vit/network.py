"""The elastic ViT supernet: every layer is driven by its spec from ``space.layers(arch)``."""

from __future__ import annotations

from torch import nn

from elasticnas.supernet.families.vit.arch import ViTArch
from elasticnas.supernet.families.vit.elastic import ElasticClassTokenNorm, ElasticPatchEmbed, ElasticTransformerLayer
from elasticnas.supernet.families.vit.space import ViTSpace
from elasticnas.supernet.layers import ElasticClassifier
from elasticnas.supernet.module import SpecDrivenSupernet


class ViTSupernet(SpecDrivenSupernet):
    """Elastic Vision Transformer over a :class:`ViTSpace` (AutoFormer's weight entanglement).

    >>> import torch
    >>> from elasticnas.supernet import create_supernet
    >>> net = create_supernet("tiny_vit", num_classes=10, in_channels=1)
    >>> arch = net.space.sample(0)
    >>> net.eval()(torch.zeros(2, 1, arch.resolution, arch.resolution), arch).shape
    torch.Size([2, 10])
    """

    input_weight = "patch_embed.weight"
    output_layer = "head"

    def __init__(self, space: ViTSpace):
        super().__init__(space)
        embed = max(space.embed_choices)
        self.patch_embed = ElasticPatchEmbed(space.in_channels, embed, space.patch_size,
                                             max(space.resolutions) // space.patch_size, space.pos_embed_std)
        hidden = max(space.mlp_hidden(embed, r) for r in space.mlp_ratio_choices)
        self.blocks = nn.ModuleList(
            ElasticTransformerLayer(embed, max(space.head_choices), space.head_dim, hidden, space.qkv_bias,
                                    space.norm_eps) for _ in range(space.max_depth))
        self.norm = ElasticClassTokenNorm(embed, space.norm_eps)
        self.head = ElasticClassifier(embed, space.num_classes)
        nn.init.trunc_normal_(self.head.weight, std=0.02)

    def _modules_of(self, arch: ViTArch) -> list[nn.Module]:
        return [self.patch_embed, *self.blocks[: arch.depth], self.norm, self.head]

    def no_weight_decay(self) -> set[str]:
        """The class token and position embeddings, as in timm and DeiT."""
        return {"patch_embed.cls_token", "patch_embed.pos_embed"}
