"""The elastic decoder supernet: every layer is driven by its spec from ``space.layers(arch)``."""

from __future__ import annotations

from torch import Tensor, nn

from elasticnas.supernet.families.decoder.arch import DecoderArch
from elasticnas.supernet.families.decoder.elastic import ElasticDecoderLayer, ElasticLMHead, ElasticTokenEmbed
from elasticnas.supernet.families.decoder.math import KVCache
from elasticnas.supernet.families.decoder.model import check_length
from elasticnas.supernet.families.decoder.space import DecoderSpace
from elasticnas.supernet.module import SpecDrivenSupernet, prefixed


class DecoderSupernet(SpecDrivenSupernet):
    """Elastic decoder-only language model over a :class:`DecoderSpace` (MatFormer's nesting).

    ``forward(tokens, arch, cache)``: token ids (batch, tokens) -> logits (batch, tokens, vocabulary);
    a :class:`KVCache` continues the sequence it holds.

    >>> import torch
    >>> from elasticnas.supernet import create_supernet
    >>> net = create_supernet("tiny_gpt", num_classes=256)
    >>> net.eval()(torch.zeros(2, 16, dtype=torch.long), net.space.min()).shape
    torch.Size([2, 16, 256])
    """

    input_weight = None  # token ids have no channels to adapt
    output_layer = None  # the vocabulary is the model's own, not a dataset's classes

    def __init__(self, space: DecoderSpace):
        super().__init__(space)
        embed = max(space.embed_choices)
        self.embed = ElasticTokenEmbed(space.num_classes, embed, space.position_rows)
        self.blocks = nn.ModuleList(
            ElasticDecoderLayer(embed, max(space.head_choices), space.kv_group, space.head_dim, max(space.mlp_choices),
                                norm=space.norm, gated=space.mlp == "swiglu", bias=space.bias)
            for _ in range(space.max_depth))
        self.head = ElasticLMHead(embed, space.num_classes, norm=space.norm, tied=space.tie_embeddings)

    def _modules_of(self, arch: DecoderArch) -> list[nn.Module]:
        return [self.embed, *self.blocks[: arch.depth], self.head]

    def forward(self, tokens: Tensor, arch: DecoderArch | None = None, cache: KVCache | None = None) -> Tensor:
        """Run ``arch`` (default: the active architecture) on token ids, any length up to the position table's."""
        (embed, embed_spec), *layers, (head, head_spec) = self._layers(self.resolve(arch))
        past = cache.length if cache is not None else 0
        if self.space.position_rows:
            check_length(past, tokens.shape[1], self.space.position_rows)
        x = embed.run(tokens, embed_spec, past)
        for index, (layer, spec) in enumerate(layers):
            x = layer.run(x, spec, past, cache, index)
        return head.run(x, head_spec, embed.spec_state(embed_spec)["tokens.weight"])

    def active_state_dict(self, arch: DecoderArch) -> dict[str, Tensor]:
        """The active slices, named as in :class:`~elasticnas.supernet.families.decoder.model.DecoderLM`."""
        (embed, embed_spec), *layers, (head, head_spec) = self._layers(arch)
        state = {**prefixed("embed", embed.spec_state(embed_spec)), **prefixed("head", head.spec_state(head_spec))}
        for index, (layer, spec) in enumerate(layers):
            state.update(prefixed(f"layers.{index}", layer.spec_state(spec)))
        return state

    def no_weight_decay(self) -> set[str]:
        """The embedding tables, as nanoGPT and Llama's recipes leave them (besides norms and biases)."""
        return {"embed.tokens", "embed.positions"}
