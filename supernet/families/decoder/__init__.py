"""Decoder-only language models (GPT-2 and Llama layouts; MatFormer's nesting: elastic embedding width,
depth, query heads in key/value groups and MLP width, with a KV cache)."""

from elasticnas.supernet.families.decoder import presets as _presets  # noqa: F401  (registers the family)
from elasticnas.supernet.families.decoder.arch import DecoderArch
from elasticnas.supernet.families.decoder.math import KVCache
from elasticnas.supernet.families.decoder.model import DecoderLM, generate
from elasticnas.supernet.families.decoder.network import DecoderSupernet
from elasticnas.supernet.families.decoder.space import DecoderSpace

__all__ = ["DecoderArch", "DecoderLM", "DecoderSpace", "DecoderSupernet", "KVCache", "generate"]
