"""A standalone decoder-only language model (an extracted subnet) and text generation with a KV cache."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from elasticnas.core.errors import ConfigError
from elasticnas.supernet.families.decoder.layers import DecoderLayer, LMHead, TokenEmbed
from elasticnas.supernet.families.decoder.math import KVCache


def check_length(past: int, new: int, limit: int) -> None:
    if past + new > limit:
        raise ValueError(f"{past} cached + {new} new tokens exceed the model's {limit} positions "
                         f"(its learned position table); shorten the prompt or the generation")


class DecoderLM(nn.Module):
    """Token ids (batch, tokens) -> logits (batch, tokens, vocabulary); ``cache`` continues a sequence.

    Parameter names: ``embed.tokens.weight`` (and ``embed.positions.weight``), ``layers.{i}.norm1``,
    ``layers.{i}.attn.{q,k,v,out}``, ``layers.{i}.norm2``, ``layers.{i}.mlp.{gate,up,down}``,
    ``head.norm`` (and ``head.linear.weight`` when the embeddings are not tied).
    """

    def __init__(self, specs):
        super().__init__()
        embed, *layers, head = specs
        self.max_positions = embed.max_positions
        self.embed = TokenEmbed(embed)
        self.layers = nn.ModuleList(DecoderLayer(spec) for spec in layers)
        self.head = LMHead(head)

    def forward(self, tokens: Tensor, cache: KVCache | None = None) -> Tensor:
        past = cache.length if cache is not None else 0
        if self.max_positions and not torch.jit.is_tracing():  # an exporter's trace has no length to check
            check_length(past, tokens.shape[1], self.max_positions)
        x = self.embed(tokens, past)
        for index, layer in enumerate(self.layers):
            x = layer(x, past, cache, index)
        return self.head(x, self.embed.tokens.weight)

    def generate(self, prompt: Tensor, new_tokens: int, **sampling) -> Tensor:
        """``prompt`` continued by ``new_tokens`` tokens over a KV cache (see :func:`generate`)."""
        return generate(self, prompt, new_tokens, **sampling)


class DecodeStep(nn.Module):
    """One generation step of ``model``: a token per row in, its logits out, over a KV cache filled
    once with ``cached`` random tokens (each call starts from that cache again): what a decode
    latency times end to end."""

    def __init__(self, model: DecoderLM, cached: int, vocab_size: int):
        super().__init__()
        self.model = model
        cache = KVCache()
        with torch.no_grad():
            model(torch.randint(0, vocab_size, (1, cached), generator=torch.Generator().manual_seed(0)), cache)
        for index, (keys, values) in enumerate(zip(cache.keys, cache.values, strict=True)):
            self.register_buffer(f"keys_{index}", keys)
            self.register_buffer(f"values_{index}", values)
        self.cached, self.depth = cached, len(cache.keys)

    def forward(self, tokens: Tensor) -> Tensor:
        cache = KVCache()
        batch = tokens.shape[0]
        cache.keys = [getattr(self, f"keys_{i}").expand(batch, -1, -1, -1) for i in range(self.depth)]
        cache.values = [getattr(self, f"values_{i}").expand(batch, -1, -1, -1) for i in range(self.depth)]
        return self.model(tokens, cache)


@torch.no_grad()
def generate(model: Callable[[Tensor, KVCache], Tensor], prompt: Tensor, new_tokens: int, *,
             temperature: float = 1.0, top_k: int | None = None, generator: torch.Generator | None = None) -> Tensor:
    """``prompt`` (batch, tokens) continued by ``new_tokens`` sampled tokens, one forward pass of the
    new token per step over the KV cache (``temperature=0``: greedy). ``model(tokens, cache)`` -> logits."""
    if prompt.dim() != 2 or prompt.shape[1] < 1:
        raise ConfigError(f"the prompt must hold at least one token per row (batch, tokens), "
                          f"got shape {tuple(prompt.shape)}")
    if new_tokens < 0 or temperature < 0 or (top_k is not None and top_k < 1):
        raise ConfigError(f"new_tokens and temperature must be >= 0 and top_k >= 1, "
                          f"got {new_tokens}, {temperature}, {top_k}")
    cache, tokens, step = KVCache(), prompt, prompt
    for _ in range(new_tokens):
        logits = model(step, cache)[:, -1].float()
        if temperature == 0:
            step = logits.argmax(-1, keepdim=True)
        else:
            logits = logits / temperature
            if top_k is not None:
                kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            step = torch.multinomial(logits.softmax(-1), 1, generator=generator)
        tokens = torch.cat([tokens, step], dim=1)
    return tokens
