"""The decoder family's registration and presets.

``num_classes`` is the vocabulary: 256 for the bundled byte-level corpus; the GPT-2 and Llama
presets count their own tokenizers' vocabularies (50,257 and 49,152) when given those.
"""

from __future__ import annotations

from elasticnas.supernet.catalogue import register_family, register_supernet
from elasticnas.supernet.families.decoder.network import DecoderSupernet
from elasticnas.supernet.families.decoder.space import DecoderSpace

register_family("decoder", space=DecoderSpace, supernet=DecoderSupernet)


@register_supernet("tiny_gpt")
def tiny_gpt(num_classes: int = 256, in_channels: int = 1) -> DecoderSpace:
    """A GPT-2-layout byte model that trains on 2 CPU cores in minutes: embedding 96-128, 3-4 layers,
    2-4 heads of 32, MLP 128-512, contexts of 64 and 128 bytes."""
    return DecoderSpace(name="tiny_gpt", num_classes=num_classes, in_channels=1, resolutions=(64, 128),
                        embed_choices=(96, 128), depth_choices=(3, 4), head_choices=(2, 3, 4),
                        mlp_choices=(128, 256, 384, 512), head_dim=32)


@register_supernet("gpt2_small")
def gpt2_small(num_classes: int = 50257, in_channels: int = 1) -> DecoderSpace:
    """GPT-2 small at its largest (``transformers``' ``GPT2LMHeadModel()``: 124,439,808 parameters with
    50,257 tokens): embedding 768, 12 layers of 12 heads of 64, MLP 3072, 1,024 learned positions,
    tied embeddings; elastic down to embedding 512, 8 layers, 4 heads and MLP 768 (MatFormer's x1/4)."""
    return DecoderSpace(name="gpt2_small", num_classes=num_classes, in_channels=1, resolutions=(256, 512, 1024),
                        embed_choices=(512, 640, 768), depth_choices=(8, 10, 12), head_choices=(4, 8, 12),
                        mlp_choices=(768, 1536, 2304, 3072), head_dim=64, max_positions=1024)


@register_supernet("smollm_135m")
def smollm_135m(num_classes: int = 49152, in_channels: int = 1) -> DecoderSpace:
    """A Llama-layout space whose largest subnet is SmolLM-135M (``transformers``' ``LlamaForCausalLM``
    with hidden 576, 30 layers, 9 query and 3 key/value heads of 64, intermediate 1536, 49,152 tokens,
    tied embeddings: 134,515,008 parameters). RMSNorm, rotary positions (theta 10,000), SwiGLU, no
    biases; elastic in key/value groups of 3 heads, MLP 384-1536, 20-30 layers, embedding 384-576."""
    return DecoderSpace(name="smollm_135m", num_classes=num_classes, in_channels=1, resolutions=(256, 512, 2048),
                        embed_choices=(384, 480, 576), depth_choices=(20, 25, 30), head_choices=(3, 6, 9),
                        mlp_choices=(384, 768, 1152, 1536), head_dim=64, kv_group=3, norm="rmsnorm", mlp="swiglu",
                        bias=False, positions="rope", norm_eps=1e-5)
