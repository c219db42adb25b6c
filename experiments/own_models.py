"""A user's own network, written as an ordinary ``nn.Module`` with no elasticnas code: what the
bring-your-own-model benchmark trains, elasticizes and prunes."""

from __future__ import annotations

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class UserResNet(nn.Module):
    """Three stages of two basic blocks (16, 32, 64 channels at width 16), global pooling, a linear head."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 16):
        super().__init__()
        widths = (width, 2 * width, 4 * width)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU())
        stages, c_in = [], width
        for i, c_out in enumerate(widths):
            stages.append(nn.Sequential(Block(c_in, c_out, 1 if i == 0 else 2), Block(c_out, c_out)))
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(c_in, num_classes)

    def forward(self, x):
        return self.head(self.stages(self.stem(x)).mean((2, 3)))


def user_resnet(num_classes: int = 10, in_channels: int = 1, width: int = 16) -> nn.Module:
    return UserResNet(num_classes, in_channels, width)


class UserViT(nn.Module):
    """A ``transformers`` classifier returning its logits tensor (its output is a dataclass)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).logits


def user_vit(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """A small ``transformers`` ViT for 28 px digits: 7 px patches (16 tokens and a class token), width 64,
    4 layers of 4 heads, MLP 128; built from its config (random weights, nothing downloaded)."""
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(image_size=28, patch_size=7, num_channels=in_channels, hidden_size=64, num_hidden_layers=4,
                       num_attention_heads=4, intermediate_size=128, num_labels=num_classes,
                       hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return UserViT(ViTForImageClassification(config))
