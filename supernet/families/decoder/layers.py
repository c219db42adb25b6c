"""The layers of a decoder-only language model: specs (cost, build) and the static modules they build.

A decoder runs a token embedding (plus learned positions, GPT-2, or none: rotary positions are
applied inside attention, Llama), pre-norm decoder layers and a head (final norm, then logits
over the vocabulary; with tied embeddings the head reuses the token embedding matrix and owns
no weight of its own). Costs are counted at ``tokens``, the sequence length of the space's
``resolution`` gene (its context length).

Counting convention (as for the ViT): one MAC per multiply-accumulate of every matrix product,
attention's two products per query head over the whole causal square included (the kernels
compute it); embedding lookups, norms, softmax, activations and additions count none.
Parameters count every weight, bias and norm scale, the position table once at its full
length, and a tied embedding matrix once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from elasticnas.supernet.families.decoder.math import KVCache, decoder_layer, embed_tokens, lm_logits
from elasticnas.supernet.specs import LayerCost, LayerSpec, register_spec


def norm_params(kind: str, width: int) -> int:
    return width * (2 if kind == "layernorm" else 1)


@register_spec
@dataclass(frozen=True)
class TokenEmbedSpec(LayerSpec):
    """Token ids (tokens,) -> (tokens, embed_dim): the embedding matrix, plus learned positions."""

    vocab_size: int
    embed_dim: int
    tokens: int  # sequence length the costs are counted at
    max_positions: int  # rows of the learned position table; 0 with rotary positions

    @property
    def input_shape(self) -> tuple[int]:
        return (self.tokens,)

    def cost(self) -> LayerCost:
        params = (self.vocab_size + self.max_positions) * self.embed_dim
        gathered = self.tokens * self.embed_dim * (2 if self.max_positions else 1)
        return LayerCost(params, 0, 0, self.tokens + gathered)

    def build(self, bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> nn.Module:
        return TokenEmbed(self)

    def timing_module(self, bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> nn.Module:
        return OneInput(TokenEmbed(self))

    def example_input(self, batch_size: int = 1, generator: torch.Generator | None = None) -> Tensor:
        return torch.randint(0, self.vocab_size, (batch_size, self.tokens), generator=generator)


@register_spec
@dataclass(frozen=True)
class DecoderLayerSpec(LayerSpec):
    """One pre-norm decoder layer on (tokens, embed_dim): causal attention, then the MLP."""

    embed_dim: int
    num_heads: int  # query heads
    kv_heads: int  # key/value heads: num_heads for multi-head attention, fewer for grouped-query
    head_dim: int
    mlp_hidden: int
    tokens: int
    norm: str = "layernorm"
    mlp: str = "gelu"
    bias: bool = True
    rope_theta: float = 0.0  # 0: no rotary positions
    norm_eps: float = 1e-5
    cached: int = 0  # tokens already in the KV cache that the ``tokens`` new ones attend to (decoding)

    @property
    def input_shape(self) -> tuple[int, int]:
        return (self.tokens, self.embed_dim)

    @property
    def attention_width(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_width(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def cached_values_per_token(self) -> int:
        return 2 * self.kv_width  # one key and one value per key/value head

    def cost(self) -> LayerCost:
        e, a, kv, hidden, n = self.embed_dim, self.attention_width, self.kv_width, self.mlp_hidden, self.tokens
        mlp_inputs = 2 if self.mlp == "swiglu" else 1
        weights = e * a + 2 * e * kv + a * e + (mlp_inputs + 1) * e * hidden
        biases = (a + 2 * kv + e + mlp_inputs * hidden + e) if self.bias else 0
        params = weights + biases + 2 * norm_params(self.norm, e)
        seen = self.cached + n  # keys each new token's query meets
        macs = n * weights + 2 * self.num_heads * n * seen * self.head_dim
        # the input stays alive for the residual; then the larger of attention's and the MLP's working sets
        attention = n * (a + 2 * kv) + 2 * self.num_heads * n * seen
        mlp = n * e + (mlp_inputs + 1) * n * hidden
        return LayerCost(params, macs, 0, n * e + max(attention, mlp), self.cached_values_per_token * seen)

    def build(self, bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> nn.Module:
        return DecoderLayer(self)

    def timing_module(self, bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> nn.Module:
        return CachedStep(DecoderLayer(self), self.cached) if self.cached else OneInput(DecoderLayer(self))


@register_spec
@dataclass(frozen=True)
class LMHeadSpec(LayerSpec):
    """The final norm and the logits over the vocabulary: (tokens, embed_dim) -> (tokens, vocab_size)."""

    embed_dim: int
    vocab_size: int
    tokens: int
    norm: str = "layernorm"
    norm_eps: float = 1e-5
    tied: bool = True  # logits from the token embedding matrix, which the embedding layer counts

    @property
    def input_shape(self) -> tuple[int, int]:
        return (self.tokens, self.embed_dim)

    def cost(self) -> LayerCost:
        weights = self.embed_dim * self.vocab_size
        params = norm_params(self.norm, self.embed_dim) + (0 if self.tied else weights)
        return LayerCost(params, self.tokens * weights, 0, self.tokens * (self.embed_dim + self.vocab_size))

    def build(self, bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> nn.Module:
        return LMHead(self)

    def timing_module(self, bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> nn.Module:
        return TiedHead(LMHead(self)) if self.tied else OneInput(LMHead(self))


# ----- static modules ---------------------------------------------------------------------------
class Norm(nn.Module):
    """The parameters of a LayerNorm (scale and shift) or an RMSNorm (scale), initialised to the identity."""

    def __init__(self, kind: str, width: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.bias = nn.Parameter(torch.zeros(width)) if kind == "layernorm" else None


def _state(module: nn.Module) -> dict[str, Tensor]:
    return dict(module.named_parameters())


class TokenEmbed(nn.Module):
    def __init__(self, spec: TokenEmbedSpec):
        super().__init__()
        self.tokens = nn.Embedding(spec.vocab_size, spec.embed_dim)
        self.positions = nn.Embedding(spec.max_positions, spec.embed_dim) if spec.max_positions else None

    def forward(self, tokens: Tensor, past: int = 0) -> Tensor:
        return embed_tokens(tokens, _state(self), past)


class DecoderLayer(nn.Module):
    def __init__(self, spec: DecoderLayerSpec):
        super().__init__()
        self.spec = spec
        e = spec.embed_dim
        self.norm1, self.norm2 = Norm(spec.norm, e), Norm(spec.norm, e)
        a, kv, hidden, bias = spec.attention_width, spec.kv_width, spec.mlp_hidden, spec.bias
        self.attn = nn.ModuleDict({"q": nn.Linear(e, a, bias=bias), "k": nn.Linear(e, kv, bias=bias),
                                   "v": nn.Linear(e, kv, bias=bias), "out": nn.Linear(a, e, bias=bias)})
        mlp = {"up": nn.Linear(e, hidden, bias=bias), "down": nn.Linear(hidden, e, bias=bias)}
        if spec.mlp == "swiglu":
            mlp["gate"] = nn.Linear(e, hidden, bias=bias)
        self.mlp = nn.ModuleDict(mlp)

    def forward(self, x: Tensor, past: int = 0, cache: KVCache | None = None, index: int = 0) -> Tensor:
        return decoder_layer(x, _state(self), self.spec, past, cache, index)


class OneInput(nn.Module):
    """``module`` run on its first input alone, the rest at their defaults: an exporter (ONNX, ExecuTorch)
    then sees one input, as the latency harness feeds one."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x)


class CachedStep(nn.Module):
    """A decoder layer run on new tokens over ``cached`` earlier ones: a KV cache of random keys and
    values, the same every call (each call's appended copy is dropped), as one decoding step meets it."""

    def __init__(self, layer: DecoderLayer, cached: int):
        super().__init__()
        self.layer = layer
        shape = (1, layer.spec.kv_heads, cached, layer.spec.head_dim)
        self.register_buffer("keys", torch.randn(shape))
        self.register_buffer("values", torch.randn(shape))

    def forward(self, x: Tensor) -> Tensor:
        cache = KVCache()
        batch = x.shape[0]
        cache.keys, cache.values = [self.keys.expand(batch, -1, -1, -1)], [self.values.expand(batch, -1, -1, -1)]
        return self.layer(x, self.keys.shape[2], cache, 0)


class TiedHead(nn.Module):
    """A tied head timed alone: it reads a token embedding matrix of its own (in the model, the embedding layer's)."""

    def __init__(self, head: LMHead):
        super().__init__()
        self.head = head
        self.register_buffer("embedding", torch.randn(head.spec.vocab_size, head.spec.embed_dim) * 0.02)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(x, self.embedding)


class LMHead(nn.Module):
    def __init__(self, spec: LMHeadSpec):
        super().__init__()
        self.spec = spec
        self.norm = Norm(spec.norm, spec.embed_dim)
        self.linear = None if spec.tied else nn.Linear(spec.embed_dim, spec.vocab_size, bias=False)

    def forward(self, x: Tensor, embedding: Tensor | None = None) -> Tensor:
        return lm_logits(x, _state(self), self.spec, embedding)
