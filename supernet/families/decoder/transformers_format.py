"""A homogeneous decoder subnet in ``transformers``' own layout: GPT-2 (``GPT2LMHeadModel``) or Llama
(``LlamaForCausalLM``), as a config dict and a state dict, so the Hugging Face stack loads it.

Homogeneous: every layer keeps the same heads and MLP width (``transformers`` configs hold one
of each), and for GPT-2 the heads fill the embedding width (``heads x head_dim = embed_dim``).
GPT-2 keeps q, k and v in one ``c_attn`` matrix and stores its linear layers transposed (its
``Conv1D``); Llama names them ``q_proj`` ... ``down_proj``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from elasticnas.core.errors import InvalidArchitectureError


def _uniform_layers(space, arch) -> tuple[int, int]:
    heads, hidden = set(arch.num_heads[: arch.depth]), set(arch.mlp_hidden[: arch.depth])
    if len(heads) != 1 or len(hidden) != 1:
        raise InvalidArchitectureError(f"transformers' configs hold one head count and one MLP width for every "
                                       f"layer, but this subnet has heads {sorted(heads)} and MLP widths "
                                       f"{sorted(hidden)}; export it as safetensors + JSON instead")
    return heads.pop(), hidden.pop()


def layout_of(space) -> str:
    """'gpt2' or 'llama': the ``transformers`` model class whose arithmetic the space's settings match."""
    gpt2 = (space.norm, space.mlp, space.positions, space.bias, space.kv_group) == ("layernorm", "gelu", "learned",
                                                                                      True, 1)
    llama = (space.norm, space.mlp, space.positions) == ("rmsnorm", "swiglu", "rope")
    if not (gpt2 or llama):
        raise InvalidArchitectureError(
            f"space {space.name!r} ({space.norm}, {space.mlp} MLP, {space.positions} positions, bias={space.bias}, "
            f"kv_group={space.kv_group}) matches neither GPT-2 (layernorm, gelu, learned, biases, kv_group 1) "
            f"nor Llama (rmsnorm, swiglu, rope)")
    return "gpt2" if gpt2 else "llama"


def transformers_config(space, arch) -> dict[str, Any]:
    """The ``config.json`` of ``arch`` for ``GPT2Config`` or ``LlamaConfig``."""
    heads, hidden = _uniform_layers(space, arch)
    if layout_of(space) == "gpt2":
        if heads * space.head_dim != arch.embed_dim:
            raise InvalidArchitectureError(f"GPT-2 needs heads x head_dim = embed_dim, but {heads} x {space.head_dim} "
                                           f"!= {arch.embed_dim}")
        return {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": space.num_classes,
                "n_positions": space.position_rows, "n_embd": arch.embed_dim, "n_layer": arch.depth, "n_head": heads,
                "n_inner": hidden, "activation_function": "gelu_new", "layer_norm_epsilon": space.norm_eps,
                "tie_word_embeddings": space.tie_embeddings}
    if arch.embed_dim % heads:
        raise InvalidArchitectureError(f"LlamaConfig needs the embedding width to be a multiple of the heads, "
                                       f"but {arch.embed_dim} is not a multiple of {heads}")
    return {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": space.num_classes,
            "hidden_size": arch.embed_dim, "intermediate_size": hidden, "num_hidden_layers": arch.depth,
            "num_attention_heads": heads, "num_key_value_heads": heads // space.kv_group, "head_dim": space.head_dim,
            "hidden_act": "silu", "rms_norm_eps": space.norm_eps, "rope_theta": space.rope_theta,
            "max_position_embeddings": max(space.resolutions), "attention_bias": space.bias, "mlp_bias": space.bias,
            "tie_word_embeddings": space.tie_embeddings}


def _gpt2_state(state: dict[str, Tensor], depth: int) -> dict[str, Tensor]:
    out = {"transformer.wte.weight": state["embed.tokens.weight"], "transformer.wpe.weight":
           state["embed.positions.weight"], "transformer.ln_f.weight": state["head.norm.weight"],
           "transformer.ln_f.bias": state["head.norm.bias"]}
    if "head.linear.weight" in state:
        out["lm_head.weight"] = state["head.linear.weight"]
    for i in range(depth):
        ours, theirs = f"layers.{i}.", f"transformer.h.{i}."
        for a, b in (("norm1", "ln_1"), ("norm2", "ln_2")):
            out[f"{theirs}{b}.weight"], out[f"{theirs}{b}.bias"] = state[f"{ours}{a}.weight"], state[f"{ours}{a}.bias"]
        out[f"{theirs}attn.c_attn.weight"] = torch.cat([state[f"{ours}attn.{p}.weight"] for p in "qkv"]).t()
        out[f"{theirs}attn.c_attn.bias"] = torch.cat([state[f"{ours}attn.{p}.bias"] for p in "qkv"])
        for a, b in (("attn.out", "attn.c_proj"), ("mlp.up", "mlp.c_fc"), ("mlp.down", "mlp.c_proj")):
            out[f"{theirs}{b}.weight"] = state[f"{ours}{a}.weight"].t()  # Conv1D stores (in, out)
            out[f"{theirs}{b}.bias"] = state[f"{ours}{a}.bias"]
    return out


def _llama_state(state: dict[str, Tensor], depth: int) -> dict[str, Tensor]:
    names = {"embed.tokens.weight": "model.embed_tokens.weight", "head.norm.weight": "model.norm.weight",
             "head.linear.weight": "lm_head.weight"}
    parts = {"norm1": "input_layernorm", "norm2": "post_attention_layernorm", "attn.q": "self_attn.q_proj",
             "attn.k": "self_attn.k_proj", "attn.v": "self_attn.v_proj", "attn.out": "self_attn.o_proj",
             "mlp.gate": "mlp.gate_proj", "mlp.up": "mlp.up_proj", "mlp.down": "mlp.down_proj"}
    for i in range(depth):
        for ours, theirs in parts.items():
            for kind in ("weight", "bias"):
                names[f"layers.{i}.{ours}.{kind}"] = f"model.layers.{i}.{theirs}.{kind}"
    return {names[k]: v for k, v in state.items()}


def to_transformers(space, arch, state: dict[str, Tensor]) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """``(config, state dict)`` of ``arch`` in ``transformers``' layout, from its extracted model's state
    (``DecoderLM.state_dict()``); tensors are made contiguous copies, ready for safetensors."""
    config = transformers_config(space, arch)
    moved = _gpt2_state(state, arch.depth) if config["model_type"] == "gpt2" else _llama_state(state, arch.depth)
    return config, {k: v.detach().contiguous().clone() for k, v in moved.items()}
