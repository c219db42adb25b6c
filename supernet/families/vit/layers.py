"""The layers of a Vision Transformer: specs (cost, build) and the static modules they build.

A ViT runs a patch embedding (a ``patch x patch`` convolution with stride ``patch``, then a
class token in front and learned position embeddings added), pre-norm transformer layers
(``x + attention(norm(x))``, then ``x + mlp(norm(x))``), a final LayerNorm on the class token,
and the classifier. Static modules are laid out and named as in timm's ``VisionTransformer``,
so a subnet whose every layer has ``heads x head_dim = embed_dim`` is a standard ViT.

Counting convention (the same as for convolutions): one MAC per multiply-accumulate of every
convolution and matrix product, including attention's two products per head
(``q k^T`` and ``softmax(.) v``, ``tokens^2 x head_dim`` each); LayerNorm, softmax, GELU and
additions count none. Parameters count every weight, bias, norm scale and shift, the class
token and the position embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from elasticnas.supernet.specs import LayerCost, LayerSpec, register_spec


def drop_path(x: Tensor, rate: float, training: bool) -> Tensor:
    """Stochastic depth: in training, zero a residual branch per sample with probability ``rate``
    (survivors scaled by ``1 / (1 - rate)``); the identity otherwise."""
    if not training or rate == 0.0:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask / keep


def attend(qkv: Tensor, num_heads: int, head_dim: int) -> Tensor:
    """Multi-head self-attention of ``qkv`` (batch, tokens, 3 x heads x head_dim; laid out q | k | v)
    -> (batch, tokens, heads x head_dim)."""
    q, k, v = qkv.unflatten(-1, (3, num_heads, head_dim)).permute(2, 0, 3, 1, 4).unbind(0)
    weights = ((q * head_dim**-0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
    return (weights @ v).transpose(1, 2).flatten(2)


def init_vit_(module: nn.Module) -> None:
    """timm's ViT initialisation: linear weights truncated normal (std 0.02), biases 0, norms 1 and 0."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# ----- specs ------------------------------------------------------------------------------------
@register_spec
@dataclass(frozen=True)
class PatchEmbedSpec(LayerSpec):
    """Patch convolution, class token and position embeddings: image -> (tokens, embed_dim)."""

    in_channels: int
    embed_dim: int
    patch_size: int
    resolution: int  # input height and width, a multiple of the patch size
    pos_embed_std: float = 0.02  # initialisation of the position embeddings (a fresh model's only)

    @property
    def out_resolution(self) -> int:
        return self.resolution // self.patch_size

    @property
    def tokens(self) -> int:
        return self.out_resolution**2 + 1

    def cost(self) -> LayerCost:
        weights = self.embed_dim * self.in_channels * self.patch_size**2
        params = weights + self.embed_dim * (2 + self.tokens)  # bias, class token, position embeddings
        peak = self.in_channels * self.resolution**2 + self.embed_dim * (self.tokens - 1 + self.tokens)
        return LayerCost(params, weights * self.out_resolution**2, 0, peak)

    def build(self, bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> nn.Module:
        return PatchEmbed(self)


@register_spec
@dataclass(frozen=True)
class TransformerLayerSpec(LayerSpec):
    """One pre-norm transformer layer on (tokens, embed_dim)."""

    embed_dim: int
    num_heads: int
    head_dim: int
    mlp_hidden: int
    tokens: int  # sequence length, the class token included
    qkv_bias: bool = True
    drop_path: float = 0.0  # stochastic depth rate of both residual branches, in training only
    norm_eps: float = 1e-6

    @property
    def input_shape(self) -> tuple[int, int]:
        return (self.tokens, self.embed_dim)

    @property
    def attention_width(self) -> int:
        return self.num_heads * self.head_dim

    def cost(self) -> LayerCost:
        e, a, hidden, n = self.embed_dim, self.attention_width, self.mlp_hidden, self.tokens
        weights = e * 3 * a + a * e + e * hidden + hidden * e
        params = weights + 3 * a * int(self.qkv_bias) + e + hidden + e + 4 * e  # biases, two norms
        macs = n * weights + 2 * self.num_heads * n * n * self.head_dim
        # the input stays alive for the residual; then the larger of the attention's and the MLP's working sets
        attention = 3 * n * a + 2 * self.num_heads * n * n
        mlp = n * e + 2 * n * hidden
        return LayerCost(params, macs, 0, n * e + max(attention, mlp))

    def build(self, bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> nn.Module:
        return TransformerLayer(self)


@register_spec
@dataclass(frozen=True)
class ClassTokenSpec(LayerSpec):
    """The final LayerNorm, applied to the class token only: (tokens, embed_dim) -> (embed_dim)."""

    embed_dim: int
    tokens: int
    norm_eps: float = 1e-6

    @property
    def input_shape(self) -> tuple[int, int]:
        return (self.tokens, self.embed_dim)

    def cost(self) -> LayerCost:
        return LayerCost(2 * self.embed_dim, 0, 0, (self.tokens + 1) * self.embed_dim)

    def build(self, bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> nn.Module:
        return ClassTokenNorm(self)


# ----- static modules ---------------------------------------------------------------------------
class PatchEmbed(nn.Module):
    def __init__(self, spec: PatchEmbedSpec):
        super().__init__()
        self.proj = nn.Conv2d(spec.in_channels, spec.embed_dim, spec.patch_size, spec.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, spec.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, spec.tokens, spec.embed_dim))
        nn.init.trunc_normal_(self.pos_embed, std=spec.pos_embed_std, a=-2 * spec.pos_embed_std,
                              b=2 * spec.pos_embed_std)
        nn.init.normal_(self.cls_token, std=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        x = self.proj(x).flatten(2).transpose(1, 2)
        return torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed


class Attention(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int, head_dim: int, qkv_bias: bool):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        self.qkv = nn.Linear(embed_dim, 3 * num_heads * head_dim, bias=qkv_bias)
        self.proj = nn.Linear(num_heads * head_dim, embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(attend(self.qkv(x), self.num_heads, self.head_dim))


class Mlp(nn.Module):
    def __init__(self, embed_dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(embed_dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TransformerLayer(nn.Module):
    def __init__(self, spec: TransformerLayerSpec):
        super().__init__()
        self.drop_path = spec.drop_path
        self.norm1 = nn.LayerNorm(spec.embed_dim, eps=spec.norm_eps)
        self.attn = Attention(spec.embed_dim, spec.num_heads, spec.head_dim, spec.qkv_bias)
        self.norm2 = nn.LayerNorm(spec.embed_dim, eps=spec.norm_eps)
        self.mlp = Mlp(spec.embed_dim, spec.mlp_hidden)
        init_vit_(self)

    def forward(self, x: Tensor) -> Tensor:
        x = x + drop_path(self.attn(self.norm1(x)), self.drop_path, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training)


class ClassTokenNorm(nn.Module):
    def __init__(self, spec: ClassTokenSpec):
        super().__init__()
        self.norm = nn.LayerNorm(spec.embed_dim, eps=spec.norm_eps)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x[:, 0])
