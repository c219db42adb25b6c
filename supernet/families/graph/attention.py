"""``nn.MultiheadAttention`` written out as the ops the width rules understand.

torch's module is one opaque call holding q, k and v in one fused weight, and it checks that
the inner width equals the embedding width, so no subnet with fewer heads can run through it.
Before capture, each one becomes a :class:`SplitAttention`: separate q/k/v/out projections
(copies of the fused weight's thirds), heads split off with ``view(..., -1, head_dim)`` and
the two matrix products, computing what torch computes (the same scaling, masks, dropout on the
weights, returned weights averaged over heads or not). Its heads then shrink like any
attention's, and an extracted subnet holds plain ``nn.Linear`` layers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from elasticnas.supernet.families.graph.capture import GraphCaptureError, runs_whole


class SplitAttention(nn.Module):
    """What ``nn.MultiheadAttention`` computes, from four separate projections."""

    def __init__(self, attention: nn.MultiheadAttention):
        super().__init__()
        embed, kdim, vdim = attention.embed_dim, attention.kdim, attention.vdim
        bias = attention.in_proj_bias is not None
        self.q_proj, self.k_proj = nn.Linear(embed, embed, bias=bias), nn.Linear(kdim, embed, bias=bias)
        self.v_proj = nn.Linear(vdim, embed, bias=bias)
        self.out_proj = nn.Linear(embed, embed, bias=attention.out_proj.bias is not None)
        self.num_heads, self.head_dim = attention.num_heads, attention.head_dim
        self.batch_first = attention.batch_first
        self.dropout = nn.Dropout(attention.dropout)
        with torch.no_grad():
            if attention._qkv_same_embed_dim:
                weights = attention.in_proj_weight.chunk(3)
            else:
                weights = (attention.q_proj_weight, attention.k_proj_weight, attention.v_proj_weight)
            biases = attention.in_proj_bias.chunk(3) if bias else (None,) * 3
            for projection, weight, part in zip((self.q_proj, self.k_proj, self.v_proj), weights, biases, strict=True):
                projection.weight.copy_(weight)
                if part is not None:
                    projection.bias.copy_(part)
            self.out_proj.load_state_dict(attention.out_proj.state_dict())
        self.to(attention.out_proj.weight.device)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None,
                need_weights: bool = True, attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False):
        batched = query.dim() == 3
        if not batched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if not self.batch_first or not batched:  # (L, N, E) -> (N, L, E)
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        batch, length, source = query.shape[0], query.shape[1], key.shape[1]
        q = self.q_proj(query).view(batch, length, -1, self.head_dim).transpose(1, 2)
        k = self.k_proj(key).view(batch, source, -1, self.head_dim).transpose(1, 2)
        v = self.v_proj(value).view(batch, source, -1, self.head_dim).transpose(1, 2)
        scores = torch.matmul(q * (1.0 / math.sqrt(self.head_dim)), k.transpose(-2, -1))
        if attn_mask is not None:  # (L, S) for all, or (N * heads, L, S): one per head
            if attn_mask.dim() == 3:
                attn_mask = attn_mask.view(batch, self.num_heads, length, source)
            scores = _masked(scores, attn_mask)
        if key_padding_mask is not None:
            scores = _masked(scores, key_padding_mask.view(batch, 1, 1, source))
        weights = self.dropout(torch.softmax(scores, dim=-1))
        output = torch.matmul(weights, v).transpose(1, 2).reshape(batch, length, -1)
        output = self.out_proj(output)
        if not self.batch_first or not batched:
            output = output.transpose(0, 1)
        if not batched:
            output = output.squeeze(1)
        if not need_weights:
            return output, None
        weights = weights.mean(dim=1) if average_attn_weights else weights
        return output, weights if batched else weights.squeeze(0)


def _masked(scores: Tensor, mask: Tensor) -> Tensor:
    """Scores with a mask applied as torch's attention applies it: True (bool) forbids, a float is added."""
    if mask.dtype == torch.bool:
        return scores.masked_fill(mask, float("-inf"))
    return scores + mask


def split_attention_modules(model: nn.Module, leaves: Sequence[type] = ()) -> list[tuple[str, str, str]]:
    """Replace every ``nn.MultiheadAttention`` of ``model`` (in place) by a :class:`SplitAttention`;
    returns ``(path, "split" or "fixed", why)`` of each. Kept whole: one inside a module that runs as
    one call (torch's ``nn.TransformerEncoderLayer`` reads its fused weights; a leaf of ``leaves``), and
    one with extra key/value biases or zero attention (no per-head split here)."""
    done = []
    modules = dict(model.named_modules())
    for path, module in modules.items():
        if not isinstance(module, nn.MultiheadAttention):
            continue
        parts = path.split(".")
        ancestors = (modules[".".join(parts[:i])] for i in range(1, len(parts)))
        owner = next((ancestor for ancestor in ancestors if runs_whole(ancestor, leaves)), None)
        if owner is not None:
            done.append((path, "fixed", f"nn.MultiheadAttention inside {type(owner).__name__}, which runs whole"))
            continue
        if module.bias_k is not None or module.add_zero_attn:
            done.append((path, "fixed", "nn.MultiheadAttention kept whole: add_bias_kv and add_zero_attn have no "
                                        "split form"))
            continue
        if not path:
            raise GraphCaptureError("the model is an nn.MultiheadAttention itself; elasticize a model that uses it "
                                    "and returns one tensor")
        model.set_submodule(path, SplitAttention(module))
        done.append((path, "split", "nn.MultiheadAttention split into q/k/v/out projections (q_proj, k_proj, ...)"))
    return done
