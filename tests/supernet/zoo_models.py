"""``transformers`` models built from small configs with random weights (nothing is downloaded), each
wrapped to take one tensor and return the logits, as a user would hand them to ``elasticize``."""

from __future__ import annotations

import torch
from torch import nn

SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}


class Logits(nn.Module):
    """``model(**{key: x}).logits``, without a KV cache (a graph has no state between calls)."""

    def __init__(self, model: nn.Module, key: str = "pixel_values"):
        super().__init__()
        self.model, self.key = model, key

    def forward(self, x):
        extra = {"use_cache": False} if self.key == "input_ids" else {}
        return self.model(**{self.key: x}, **extra).logits


class BertLogits(Logits):
    """BERT slices its position buffer by the sequence length; passing positions keeps the graph static."""

    def forward(self, x):
        positions = torch.arange(x.shape[1], device=x.device).expand(x.shape[0], -1)
        return self.model(input_ids=x, token_type_ids=torch.zeros_like(x), position_ids=positions).logits


def build(name: str) -> nn.Module:
    import transformers as T

    image = {"num_channels": 1, "num_labels": 10}
    text = {"vocab_size": 100, "max_position_embeddings": 32}
    factories = {
        "resnet_basic": lambda: Logits(T.ResNetForImageClassification(T.ResNetConfig(
            embedding_size=16, hidden_sizes=[16, 32], depths=[2, 2], layer_type="basic", **image))),
        "resnet_bottleneck": lambda: Logits(T.ResNetForImageClassification(T.ResNetConfig(
            embedding_size=16, hidden_sizes=[32, 64], depths=[2, 2], layer_type="bottleneck", **image))),
        "mobilenetv2": lambda: Logits(T.MobileNetV2ForImageClassification(T.MobileNetV2Config(
            image_size=32, depth_multiplier=0.35, **image))),
        "efficientnet": lambda: Logits(T.EfficientNetForImageClassification(T.EfficientNetConfig(
            image_size=32, width_coefficient=0.25, depth_coefficient=0.2, hidden_dim=320, **image))),
        "convnext": lambda: Logits(T.ConvNextForImageClassification(T.ConvNextConfig(
            hidden_sizes=[16, 32], depths=[2, 2], num_stages=2, **image))),
        "vit": lambda: Logits(T.ViTForImageClassification(T.ViTConfig(image_size=16, patch_size=4, **image,
                                                                       **SMALL))),
        "bert": lambda: BertLogits(T.BertForSequenceClassification(T.BertConfig(num_labels=3, **text, **SMALL))),
        "gpt2": lambda: Logits(T.GPT2LMHeadModel(T.GPT2Config(vocab_size=100, n_positions=32, n_embd=32, n_layer=2,
                                                              n_head=4, bos_token_id=0, eos_token_id=0)),
                               "input_ids"),
        "llama": lambda: Logits(T.LlamaForCausalLM(T.LlamaConfig(num_key_value_heads=4, **text, **SMALL)),
                                "input_ids"),
        "llama_gqa": lambda: Logits(T.LlamaForCausalLM(T.LlamaConfig(num_key_value_heads=2, **text, **SMALL)),
                                    "input_ids"),
    }
    return factories[name]()


def example(name: str, batch: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    if name in ("bert", "gpt2", "llama", "llama_gqa"):
        return torch.randint(0, 100, (batch, 12), generator=generator)
    size = 16 if name == "vit" else 32
    return torch.randn(batch, 1, size, size, generator=generator)


MODELS = ("resnet_basic", "resnet_bottleneck", "mobilenetv2", "efficientnet", "convnext", "vit", "bert", "gpt2",
          "llama", "llama_gqa")
