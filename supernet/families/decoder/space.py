"""The decoder-only language model space: context length, embedding width, depth, heads and MLP width per layer.

Genes, in order: the context length (the ``resolution`` gene: the sequence length at which a
subnet is costed and timed), the embedding width (the residual stream every layer reads and
writes), the depth, then the query heads of each layer slot and the MLP hidden units of each
layer slot; a slot's genes are active when the depth reaches it.

Depth keeps the first layers and drops the last ones, rather than a keep/skip gene per layer
(Gemma 3n's slicing): every smaller depth is then a prefix of the larger, so one weights file
and one KV-cache layout serve every size, and a depth gene stays one ordinal number that
predictors and search handle well. Heads are elastic in whole key/value groups: with
``kv_group`` query heads per key/value head (1: multi-head attention; more: grouped-query
attention), every head choice is a multiple of ``kv_group``.

``num_classes`` is the vocabulary (the classes each position predicts); ``in_channels`` is
unused (tokens have no channels) and kept at 1.

``phase`` says what the layer list costs and times: ``"prefill"`` (the default) runs all
``resolution`` tokens of a prompt at once, the time to the first token; ``"decode"`` runs one
new token over a KV cache of ``resolution - 1`` earlier ones, the time per generated token at
that context. Both describe the same subnets and weights (:meth:`DecoderSpace.in_phase`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import torch

from elasticnas.core.errors import ConfigError
from elasticnas.supernet.families.decoder.arch import DecoderArch
from elasticnas.supernet.families.decoder.layers import DecoderLayerSpec, LMHeadSpec, TokenEmbedSpec
from elasticnas.supernet.families.decoder.math import MLPS, NORMS, POSITIONS
from elasticnas.supernet.layer_stack import stack_genes, stack_slots
from elasticnas.supernet.space import (
    Gene,
    LayerSlot,
    SearchSpace,
    check_classes_and_channels,
    normalise_fields,
    sorted_choices,
)

PHASES = ("prefill", "decode")


@dataclass(frozen=True)
class DecoderSpace(SearchSpace):
    """Skeleton and choices of an elastic decoder-only transformer (GPT-2 or Llama layout)."""

    arch_type: ClassVar[type] = DecoderArch
    shrink_order: ClassVar[tuple[str, ...]] = ("depth", "expand", "heads", "width")
    reorder_dimensions: ClassVar[tuple[str, ...]] = ("expand", "heads")  # sorted before they shrink
    modality: ClassVar[str] = "text"
    phases: ClassVar[tuple[str, ...]] = PHASES

    name: str
    num_classes: int  # the vocabulary
    in_channels: int  # unused: kept at 1
    resolutions: tuple[int, ...]  # context lengths (tokens) at which subnets are costed and timed
    embed_choices: tuple[int, ...]
    depth_choices: tuple[int, ...]
    head_choices: tuple[int, ...]  # query heads per layer, each a multiple of kv_group
    mlp_choices: tuple[int, ...]  # MLP hidden units per layer
    head_dim: int = 64
    kv_group: int = 1  # query heads per key/value head: 1 is multi-head attention
    norm: str = "layernorm"  # or "rmsnorm"
    mlp: str = "gelu"  # GPT-2's tanh-GELU MLP, or "swiglu" (Llama)
    bias: bool = True  # biases in every linear layer (GPT-2) or none (Llama)
    positions: str = "learned"  # a learned position table (GPT-2), or "rope" (Llama)
    rope_theta: float = 10000.0  # base of the rotary frequencies (with positions="rope")
    max_positions: int = 0  # rows of the learned position table; 0: the largest context length
    tie_embeddings: bool = True  # logits from the token embedding matrix
    norm_eps: float = 1e-5
    phase: str = "prefill"  # or "decode": what the layer list costs and times (see the module docstring)
    bn_momentum: float = 0.1  # unused: a decoder has no batch norm
    bn_eps: float = 1e-5  # unused: a decoder has no batch norm
    family: str = "decoder"

    def __post_init__(self) -> None:
        normalise_fields(self)
        sorted_choices(self, "resolutions", "embed_choices", "depth_choices", "head_choices", "mlp_choices")
        check_classes_and_channels(self)
        for field, allowed in (("norm", NORMS), ("mlp", MLPS), ("positions", POSITIONS), ("phase", PHASES)):
            if getattr(self, field) not in allowed:
                raise ConfigError(f"{field}={getattr(self, field)!r} is not known; choose one of {list(allowed)}")
        least = min(min(getattr(self, f)) for f in ("resolutions", "embed_choices", "depth_choices", "mlp_choices"))
        if least < 1 or self.head_dim < 1 or self.kv_group < 1:
            raise ConfigError("resolutions, embed_choices, depth_choices, mlp_choices, head_dim and kv_group "
                              "must all be >= 1")
        if any(h < 1 or h % self.kv_group for h in self.head_choices):
            raise ConfigError(f"head_choices {list(self.head_choices)} must be positive multiples of "
                              f"kv_group={self.kv_group} (heads shrink in whole key/value groups)")
        if self.positions == "rope" and (self.head_dim % 2 or self.rope_theta <= 0):
            raise ConfigError(f"rotary positions need an even head_dim and rope_theta > 0, "
                              f"got {self.head_dim} and {self.rope_theta}")
        if self.positions == "learned" and 0 < self.max_positions < max(self.resolutions):
            raise ConfigError(f"max_positions={self.max_positions} is shorter than the longest context "
                              f"{max(self.resolutions)}; give at least that many or 0 (the longest context)")

    def in_phase(self, phase: str) -> DecoderSpace:
        """This space costing and timing ``phase`` ("prefill" or "decode"): the same subnets and weights."""
        if phase not in PHASES:
            raise ConfigError(f"phase {phase!r} is not known; choose one of {list(PHASES)}")
        return replace(self, phase=phase)

    def _new_and_cached(self, context: int) -> tuple[int, int]:
        """Tokens a pass runs and tokens already cached, at a context length."""
        return (context, 0) if self.phase == "prefill" else (1, context - 1)

    @property
    def max_depth(self) -> int:
        return max(self.depth_choices)

    @property
    def position_rows(self) -> int:
        """Rows of the learned position table (0 with rotary positions)."""
        if self.positions == "rope":
            return 0
        return self.max_positions or max(self.resolutions)

    # ----- the seam ---------------------------------------------------------------------------
    def _declare_genes(self) -> tuple[Gene, ...]:
        return stack_genes(self.resolutions, ("embed_dim", self.embed_choices), self.depth_choices,
                           [("num_heads", "heads", self.head_choices), ("mlp_hidden", "expand", self.mlp_choices)])

    def _declare_layers(self) -> tuple[LayerSlot, ...]:
        theta = self.rope_theta if self.positions == "rope" else 0.0
        new = lambda n: self._new_and_cached(n)[0]  # noqa: E731

        def layer(n, e, heads, hidden):
            tokens, cached = self._new_and_cached(n)
            return DecoderLayerSpec(e, heads, heads // self.kv_group, self.head_dim, hidden, tokens, self.norm,
                                    self.mlp, self.bias, theta, self.norm_eps, cached)

        return (LayerSlot((0, 1), lambda n, e: TokenEmbedSpec(self.num_classes, e, new(n), self.position_rows)),
                *stack_slots(self.depth_choices, 2, layer),
                LayerSlot((0, 1), lambda n, e: LMHeadSpec(e, self.num_classes, new(n), self.norm, self.norm_eps,
                                                          self.tie_embeddings)))

    def static_model(self, arch: DecoderArch):
        from elasticnas.supernet.families.decoder.model import DecoderLM

        return DecoderLM(self.layers(arch))

    def foreign_files(self, arch: DecoderArch, state: dict) -> dict[str, bytes]:
        """A homogeneous subnet also as a ``transformers`` folder (GPT-2 or Llama); nothing for the others."""
        import json

        from safetensors.torch import save as save_safetensors

        from elasticnas.core.errors import InvalidArchitectureError
        from elasticnas.core.run_layout import TRANSFORMERS_CONFIG, TRANSFORMERS_FOLDER, TRANSFORMERS_WEIGHTS
        from elasticnas.supernet.families.decoder.transformers_format import to_transformers

        try:
            config, tensors = to_transformers(self, arch, state)
        except InvalidArchitectureError:  # layers of different sizes: transformers' configs hold one
            return {}
        return {f"{TRANSFORMERS_FOLDER}/{TRANSFORMERS_CONFIG}": json.dumps(config, indent=1).encode(),
                f"{TRANSFORMERS_FOLDER}/{TRANSFORMERS_WEIGHTS}": save_safetensors(tensors, metadata={"format": "pt"})}

    def timing_model(self, arch: DecoderArch, model=None):
        from elasticnas.supernet.families.decoder.layers import OneInput
        from elasticnas.supernet.families.decoder.model import DecodeStep

        model = self.static_model(arch) if model is None else model
        if self.phase == "prefill":
            return OneInput(model)
        return DecodeStep(model, arch.resolution - 1, self.num_classes)

    def example_input(self, arch: DecoderArch, batch: int = 1, generator: torch.Generator | None = None):
        """Random token ids: a whole context of ``arch.resolution`` tokens per row (the decode phase: one)."""
        tokens, _ = self._new_and_cached(arch.resolution)
        return torch.randint(0, self.num_classes, (batch, tokens), generator=generator)

    def output_shape(self, arch: DecoderArch) -> tuple[int, ...]:
        return (self._new_and_cached(arch.resolution)[0], self.num_classes)
