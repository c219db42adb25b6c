"""Elastic ViT layers with AutoFormer's weight entanglement: one set of largest-size weights,
every subnet running the leading rows and columns of each (views, not copies).

The embedding width slices every tensor that touches the token width: the patch convolution's
filters, the class token and position embeddings, each LayerNorm, the inputs of qkv and fc1
and the outputs of the projection and fc2. Heads slice q, k and v alike (each keeps its first
``heads x head_dim`` rows), and the MLP ratio slices the hidden units. Position embeddings are
learned on the largest resolution's patch grid; a smaller resolution resamples the grid
bicubically (as timm's ``resample_abs_pos_embed`` does), and the extracted model stores the
resampled embeddings, so its outputs equal the supernet's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from elasticnas.supernet.families.vit.layers import (
    ClassTokenSpec,
    PatchEmbedSpec,
    TransformerLayerSpec,
    attend,
    drop_path,
    init_vit_,
)
from elasticnas.supernet.layers import ElasticLinear
from elasticnas.supernet.layers.linear import leading
from elasticnas.supernet.module import ElasticBlock, prefixed
from elasticnas.supernet.regularisation import regularising
from elasticnas.supernet.reorder import importance_order, permute_


def norm_state(norm: nn.LayerNorm, width: int) -> dict[str, Tensor]:
    return {"weight": leading(norm.weight, 0, width), "bias": leading(norm.bias, 0, width)}


class ElasticPatchEmbed(nn.Module):
    def __init__(self, in_channels: int, max_embed: int, patch_size: int, max_grid: int, pos_embed_std: float):
        super().__init__()
        self.patch_size, self.max_grid = patch_size, max_grid
        self.weight = nn.Parameter(torch.empty(max_embed, in_channels, patch_size, patch_size))
        self.bias = nn.Parameter(torch.zeros(max_embed))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, max_embed))
        self.pos_embed = nn.Parameter(torch.zeros(1, max_grid**2 + 1, max_embed))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)  # nn.Conv2d's default, as in timm's patch embedding
        nn.init.trunc_normal_(self.pos_embed, std=pos_embed_std, a=-2 * pos_embed_std, b=2 * pos_embed_std)
        nn.init.normal_(self.cls_token, std=1e-6)

    def position_embeddings(self, spec: PatchEmbedSpec) -> Tensor:
        table = leading(self.pos_embed, 2, spec.embed_dim)
        grid = spec.out_resolution
        if grid == self.max_grid:
            return table
        patches = table[:, 1:].reshape(1, self.max_grid, self.max_grid, -1).permute(0, 3, 1, 2)
        patches = F.interpolate(patches, size=(grid, grid), mode="bicubic", align_corners=False)
        return torch.cat([table[:, :1], patches.permute(0, 2, 3, 1).reshape(1, grid * grid, -1)], dim=1)

    def spec_state(self, spec: PatchEmbedSpec) -> dict[str, Tensor]:
        e = spec.embed_dim
        return {"proj.weight": leading(self.weight, 0, e), "proj.bias": leading(self.bias, 0, e),
                "cls_token": leading(self.cls_token, 2, e), "pos_embed": self.position_embeddings(spec)}

    def run(self, x: Tensor, spec: PatchEmbedSpec) -> Tensor:
        state = self.spec_state(spec)
        x = F.conv2d(x, state["proj.weight"], state["proj.bias"], self.patch_size).flatten(2).transpose(1, 2)
        return torch.cat([state["cls_token"].expand(x.shape[0], -1, -1), x], dim=1) + state["pos_embed"]


class ElasticTransformerLayer(ElasticBlock):
    """A pre-norm transformer layer with elastic embedding width, heads and MLP hidden width."""

    def __init__(self, max_embed: int, max_heads: int, head_dim: int, max_hidden: int, qkv_bias: bool,
                 norm_eps: float):
        super().__init__()
        self.max_heads, self.head_dim = max_heads, head_dim
        self.norm1 = nn.LayerNorm(max_embed, eps=norm_eps)
        self.qkv = ElasticLinear(max_embed, 3 * max_heads * head_dim, qkv_bias)
        self.proj = ElasticLinear(max_heads * head_dim, max_embed)
        self.norm2 = nn.LayerNorm(max_embed, eps=norm_eps)
        self.fc1 = ElasticLinear(max_embed, max_hidden)
        self.fc2 = ElasticLinear(max_hidden, max_embed)
        init_vit_(self)
        for layer in (self.qkv, self.proj, self.fc1, self.fc2):
            nn.init.trunc_normal_(layer.weight, std=0.02)

    def _qkv_state(self, spec: TransformerLayerSpec) -> dict[str, Tensor]:
        """q, k and v each keep their first ``heads x head_dim`` rows: one (3 x width, embed) copy
        when heads are fewer (three row blocks cannot be one view), the tensors themselves otherwise."""
        width, full = spec.attention_width, self.max_heads * self.head_dim
        weight = leading(self.qkv.weight, 1, spec.embed_dim)
        state = {"weight": weight if width == full else weight.unflatten(0, (3, full))[:, :width].flatten(0, 1)}
        if self.qkv.bias is not None:
            bias = self.qkv.bias
            state["bias"] = bias if width == full else bias.unflatten(0, (3, full))[:, :width].flatten()
        return state

    def spec_state(self, spec: TransformerLayerSpec) -> dict[str, Tensor]:
        e, width, hidden = spec.embed_dim, spec.attention_width, spec.mlp_hidden
        parts = {"norm1": norm_state(self.norm1, e), "attn.qkv": self._qkv_state(spec),
                 "attn.proj": self.proj.active_state(width, e), "norm2": norm_state(self.norm2, e),
                 "mlp.fc1": self.fc1.active_state(e, hidden), "mlp.fc2": self.fc2.active_state(hidden, e)}
        return {name: tensor for prefix, state in parts.items() for name, tensor in prefixed(prefix, state).items()}

    def run(self, x: Tensor, spec: TransformerLayerSpec) -> Tensor:
        s = self.spec_state(spec)
        shape, eps = (spec.embed_dim,), self.norm1.eps
        h = F.layer_norm(x, shape, s["norm1.weight"], s["norm1.bias"], eps)
        h = attend(F.linear(h, s["attn.qkv.weight"], s.get("attn.qkv.bias")), spec.num_heads, spec.head_dim)
        x = x + drop_path(F.linear(h, s["attn.proj.weight"], s["attn.proj.bias"]), spec.drop_path, regularising(self))
        h = F.gelu(F.linear(F.layer_norm(x, shape, s["norm2.weight"], s["norm2.bias"], eps),
                            s["mlp.fc1.weight"], s["mlp.fc1.bias"]))
        h = F.linear(h, s["mlp.fc2.weight"], s["mlp.fc2.bias"])
        return x + drop_path(h, spec.drop_path, regularising(self))

    def sort_channels(self, optimizer: torch.optim.Optimizer | None = None) -> Tensor:
        """MLP hidden units by the L1 norm of the fc2 weights that read them, largest first."""
        order = importance_order(self.fc2.weight, 1)
        permute_(self.fc2.weight, order, 1, optimizer)
        permute_(self.fc1.weight, order, 0, optimizer)
        permute_(self.fc1.bias, order, 0, optimizer)
        return order


class ElasticClassTokenNorm(nn.Module):
    def __init__(self, max_embed: int, norm_eps: float):
        super().__init__()
        self.norm = nn.LayerNorm(max_embed, eps=norm_eps)

    def spec_state(self, spec: ClassTokenSpec) -> dict[str, Tensor]:
        return prefixed("norm", norm_state(self.norm, spec.embed_dim))

    def run(self, x: Tensor, spec: ClassTokenSpec) -> Tensor:
        state = self.spec_state(spec)
        return F.layer_norm(x[:, 0], (spec.embed_dim,), state["norm.weight"], state["norm.bias"], self.norm.eps)
