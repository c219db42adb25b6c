"""Elastic decoder modules with MatFormer's nesting: every smaller size is the leading slice of the larger.

One set of largest-size weights; a subnet reads the first ``embed_dim`` columns of the token
embeddings and of every matrix that reads the residual stream, the first ``num_heads`` query
heads (and the first ``num_heads / group`` key/value heads: query head ``h`` reads key/value
head ``h // group``, so leading query heads pair with leading key/value heads), and the first
``mlp_hidden`` MLP units. Views, never copies, so training a subnet trains the shared weights.

Leading slices are only good subnets when the most important units come first: heads (as
whole key/value groups) and MLP units are re-ordered, without changing the full network's
function, by :meth:`ElasticDecoderLayer.permute_units` (weight norms, the seam's
``sort_channels``; or activations on calibration text, :mod:`.importance`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from elasticnas.supernet.families.decoder.layers import DecoderLayerSpec, LMHeadSpec, Norm, TokenEmbedSpec
from elasticnas.supernet.families.decoder.math import KVCache, decoder_layer, embed_tokens, lm_logits
from elasticnas.supernet.layers import ElasticLinear
from elasticnas.supernet.layers.linear import leading
from elasticnas.supernet.module import ElasticBlock, prefixed
from elasticnas.supernet.reorder import importance_order, permute_


def norm_state(norm: Norm, width: int) -> dict[str, Tensor]:
    state = {"weight": leading(norm.weight, 0, width)}
    if norm.bias is not None:
        state["bias"] = leading(norm.bias, 0, width)
    return state


class ElasticTokenEmbed(nn.Module):
    def __init__(self, vocab_size: int, max_embed: int, max_positions: int):
        super().__init__()
        self.tokens = nn.Parameter(torch.empty(vocab_size, max_embed))
        self.positions = nn.Parameter(torch.empty(max_positions, max_embed)) if max_positions else None
        nn.init.normal_(self.tokens, std=0.02)  # GPT-2's and Llama's initialisation
        if self.positions is not None:
            nn.init.normal_(self.positions, std=0.01)

    def spec_state(self, spec: TokenEmbedSpec) -> dict[str, Tensor]:
        state = {"tokens.weight": leading(self.tokens, 1, spec.embed_dim)}
        if self.positions is not None:
            state["positions.weight"] = leading(self.positions, 1, spec.embed_dim)
        return state

    def run(self, tokens: Tensor, spec: TokenEmbedSpec, past: int = 0) -> Tensor:
        return embed_tokens(tokens, self.spec_state(spec), past)


class ElasticDecoderLayer(ElasticBlock):
    """A pre-norm decoder layer with elastic embedding width, query heads (in key/value groups) and MLP units."""

    def __init__(self, max_embed: int, max_heads: int, group: int, head_dim: int, max_hidden: int, *,
                 norm: str, gated: bool, bias: bool):
        super().__init__()
        self.group, self.head_dim = group, head_dim
        attention, kv = max_heads * head_dim, max_heads // group * head_dim
        self.norm1, self.norm2 = Norm(norm, max_embed), Norm(norm, max_embed)
        self.q, self.k, self.v = (ElasticLinear(max_embed, attention, bias), ElasticLinear(max_embed, kv, bias),
                                  ElasticLinear(max_embed, kv, bias))
        self.out = ElasticLinear(attention, max_embed, bias)
        self.up, self.down = ElasticLinear(max_embed, max_hidden, bias), ElasticLinear(max_hidden, max_embed, bias)
        self.gate = ElasticLinear(max_embed, max_hidden, bias) if gated else None
        for layer in self.linears():
            nn.init.normal_(layer.weight, std=0.02)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)

    def linears(self) -> list[ElasticLinear]:
        return [m for m in (self.q, self.k, self.v, self.out, self.gate, self.up, self.down) if m is not None]

    def spec_state(self, spec: DecoderLayerSpec) -> dict[str, Tensor]:
        e, a, kv, hidden = spec.embed_dim, spec.attention_width, spec.kv_width, spec.mlp_hidden
        parts = {"norm1": norm_state(self.norm1, e), "attn.q": self.q.active_state(e, a),
                 "attn.k": self.k.active_state(e, kv), "attn.v": self.v.active_state(e, kv),
                 "attn.out": self.out.active_state(a, e), "norm2": norm_state(self.norm2, e),
                 "mlp.up": self.up.active_state(e, hidden), "mlp.down": self.down.active_state(hidden, e)}
        if self.gate is not None:
            parts["mlp.gate"] = self.gate.active_state(e, hidden)
        return {name: tensor for prefix, state in parts.items() for name, tensor in prefixed(prefix, state).items()}

    def run(self, x: Tensor, spec: DecoderLayerSpec, past: int = 0, cache: KVCache | None = None,
            index: int = 0, probe: dict[str, Tensor] | None = None) -> Tensor:
        return decoder_layer(x, self.spec_state(spec), spec, past, cache, index, probe)

    # ----- re-ordering ---------------------------------------------------------------------------
    def permute_units(self, heads: Tensor | None, hidden: Tensor | None,
                      optimizer: torch.optim.Optimizer | None = None) -> None:
        """Re-order key/value groups (``heads``: a permutation of the groups) and MLP units (``hidden``).

        The full layer computes the same function: a group's query rows, key and value rows and
        output columns move together, and so do an MLP unit's gate and up rows and down column."""
        if heads is not None:
            rows = self.group * self.head_dim
            query = (heads[:, None] * rows + torch.arange(rows)).flatten()
            kv = (heads[:, None] * self.head_dim + torch.arange(self.head_dim)).flatten()
            for layer, order in ((self.q, query), (self.k, kv), (self.v, kv)):
                permute_(layer.weight, order, 0, optimizer)
                if layer.bias is not None:
                    permute_(layer.bias, order, 0, optimizer)
            permute_(self.out.weight, query, 1, optimizer)
        if hidden is not None:
            for layer in (self.up, self.gate):
                if layer is not None:
                    permute_(layer.weight, hidden, 0, optimizer)
                    if layer.bias is not None:
                        permute_(layer.bias, hidden, 0, optimizer)
            permute_(self.down.weight, hidden, 1, optimizer)

    def sort_channels(self, optimizer: torch.optim.Optimizer | None = None) -> Tensor:
        """Key/value groups by the L1 norm of the output columns their queries feed, and MLP units
        by the L1 norm of the down-projection column each feeds, largest first; returns the MLP order."""
        groups = self.out.weight.shape[1] // (self.group * self.head_dim)
        heads = importance_order(self.out.weight.reshape(-1, groups, self.group * self.head_dim), 1)
        hidden = importance_order(self.down.weight, 1)
        self.permute_units(heads, hidden, optimizer)
        return hidden


class ElasticLMHead(nn.Module):
    def __init__(self, max_embed: int, vocab_size: int, *, norm: str, tied: bool):
        super().__init__()
        self.norm = Norm(norm, max_embed)
        self.linear = None if tied else nn.Parameter(torch.empty(vocab_size, max_embed))
        if self.linear is not None:
            nn.init.normal_(self.linear, std=0.02)

    def spec_state(self, spec: LMHeadSpec) -> dict[str, Tensor]:
        state = prefixed("norm", norm_state(self.norm, spec.embed_dim))
        if self.linear is not None:
            state["linear.weight"] = leading(self.linear, 1, spec.embed_dim)
        return state

    def run(self, x: Tensor, spec: LMHeadSpec, embedding: Tensor) -> Tensor:
        return lm_logits(x, self.spec_state(spec), spec, embedding)
