"""The arithmetic of a decoder-only transformer, shared by the elastic and the static modules.

Both kinds of module hand these functions a dict of tensors named as in the static model (the
elastic ones their active slices, the static ones their own parameters), so a subnet and its
extracted twin run the very same operations and their logits agree to the bit.

Layout follows ``transformers``: GPT-2 (LayerNorm, learned positions, tanh-GELU MLP, biases) and
Llama (RMSNorm, rotary positions with the halves rotated, SwiGLU MLP, no biases, grouped-query
attention where query head ``h`` reads key/value head ``h // group``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

NORMS = ("layernorm", "rmsnorm")
MLPS = ("gelu", "swiglu")  # gelu: the tanh approximation GPT-2 uses; swiglu: silu(gate) * up, as Llama
POSITIONS = ("learned", "rope")


class KVCache:
    """Keys and values of every decoder layer for the tokens seen so far (batch, kv heads, tokens, head dim).

    A forward pass given a cache attends over the cached tokens and appends its own; ``length``
    is the number of tokens cached, read once at the start of each pass.
    """

    def __init__(self) -> None:
        self.keys: list[Tensor] = []
        self.values: list[Tensor] = []

    @property
    def length(self) -> int:
        return self.keys[0].shape[2] if self.keys else 0

    def append(self, layer: int, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        """Add one layer's new keys and values; return all of that layer's."""
        if layer == len(self.keys):
            self.keys.append(keys)
            self.values.append(values)
        else:
            self.keys[layer] = torch.cat([self.keys[layer], keys], dim=2)
            self.values[layer] = torch.cat([self.values[layer], values], dim=2)
        return self.keys[layer], self.values[layer]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))


def normalize(x: Tensor, weight: Tensor, bias: Tensor | None, kind: str, eps: float) -> Tensor:
    """LayerNorm, or RMSNorm computed in float32 as Llama does."""
    if kind == "layernorm":  # the shape from the weight, a constant to exporters (the input's is traced)
        return F.layer_norm(x, weight.shape, weight, bias, eps)
    scaled = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)
    return weight * scaled.to(x.dtype)


def rotate(x: Tensor, positions: Tensor, theta: float) -> Tensor:
    """Rotary position embedding of ``x`` (batch, heads, tokens, head dim) at ``positions`` (tokens,).

    Frequencies ``theta ** (-2i / head_dim)``; the two halves of each head rotate together
    (``transformers``' rotate_half layout, not interleaved pairs)."""
    head_dim = x.shape[-1]
    inverse = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=x.device) / head_dim)
    angles = positions.to(torch.float32)[:, None] * inverse[None]
    angles = torch.cat([angles, angles], dim=-1)
    first, second = x.chunk(2, dim=-1)
    return x * angles.cos().to(x.dtype) + torch.cat([-second, first], dim=-1) * angles.sin().to(x.dtype)


def attend(q: Tensor, k: Tensor, v: Tensor, past: int, group: int = 1) -> Tensor:
    """Causal attention of ``q`` (batch, heads, new tokens, dim) over ``k``, ``v`` (batch, heads / group,
    past + new tokens, dim): token ``t`` of the new ones sees every cached token and new ones up to ``t``."""
    if group > 1:
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    new = q.shape[2]
    if past == 0:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    if new == 1:
        return F.scaled_dot_product_attention(q, k, v)
    mask = torch.ones(new, past + new, dtype=torch.bool, device=q.device).tril(past)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def _linear(x: Tensor, s: dict[str, Tensor], name: str) -> Tensor:
    return F.linear(x, s[f"{name}.weight"], s.get(f"{name}.bias"))


def _heads(x: Tensor, heads: int, head_dim: int) -> Tensor:
    return x.unflatten(-1, (heads, head_dim)).transpose(1, 2)


def decoder_layer(x: Tensor, s: dict[str, Tensor], spec, past: int, cache: KVCache | None, index: int,
                  probe: dict[str, Tensor] | None = None) -> Tensor:
    """One pre-norm decoder layer (``x + attention(norm(x))``, then ``x + mlp(norm(x))``) on
    ``x`` (batch, new tokens, embed dim), its tensors in ``s``; appends its keys and values to ``cache``.
    ``probe`` receives the heads' outputs (``"heads"``: batch, tokens, heads, head dim) and the MLP
    units' (``"units"``: batch, tokens, units), for importance."""
    h = normalize(x, s["norm1.weight"], s.get("norm1.bias"), spec.norm, spec.norm_eps)
    q = _heads(_linear(h, s, "attn.q"), spec.num_heads, spec.head_dim)
    k = _heads(_linear(h, s, "attn.k"), spec.kv_heads, spec.head_dim)
    v = _heads(_linear(h, s, "attn.v"), spec.kv_heads, spec.head_dim)
    if spec.rope_theta:
        positions = torch.arange(past, past + x.shape[1], device=x.device)
        q, k = rotate(q, positions, spec.rope_theta), rotate(k, positions, spec.rope_theta)
    if cache is not None:
        k, v = cache.append(index, k, v)
    h = attend(q, k, v, past, spec.num_heads // spec.kv_heads).transpose(1, 2)
    if probe is not None:
        probe["heads"] = h
    x = x + _linear(h.flatten(2), s, "attn.out")
    h = normalize(x, s["norm2.weight"], s.get("norm2.bias"), spec.norm, spec.norm_eps)
    if spec.mlp == "swiglu":
        h = F.silu(_linear(h, s, "mlp.gate")) * _linear(h, s, "mlp.up")
    else:
        h = F.gelu(_linear(h, s, "mlp.up"), approximate="tanh")
    if probe is not None:
        probe["units"] = h
    return x + _linear(h, s, "mlp.down")


def embed_tokens(tokens: Tensor, s: dict[str, Tensor], past: int) -> Tensor:
    """Token embeddings (batch, tokens) -> (batch, tokens, embed dim), plus learned positions where there are some."""
    x = F.embedding(tokens, s["tokens.weight"])
    if "positions.weight" in s:
        x = x + s["positions.weight"][past: past + tokens.shape[1]]
    return x


def lm_logits(x: Tensor, s: dict[str, Tensor], spec, embedding: Tensor) -> Tensor:
    """Final norm, then logits over the vocabulary (from the token embeddings themselves when tied)."""
    x = normalize(x, s["norm.weight"], s.get("norm.bias"), spec.norm, spec.norm_eps)
    return F.linear(x, embedding if spec.tied else s["linear.weight"])
