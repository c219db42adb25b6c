"""Static (non-elastic) modules shared by the families: what an extracted subnet is made of.

They are ordinary torch layers, built from layer specs alone, so a subnet can be rebuilt
from its architecture JSON and a safetensors file, traced and exported to ONNX. Parameter
names match the supernet's ``active_state_dict`` names.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from elasticnas.supernet.layers.activation import build_activation


class ConvBNAct(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, *,
                 groups: int = 1, activation: str | None = None, batch_norm: bool = True, bias: bool = False,
                 bn_momentum: float = 0.1, bn_eps: float = 1e-5):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2,
                              groups=groups, bias=bias)
        self.bn = nn.BatchNorm2d(out_channels, bn_eps, bn_momentum) if batch_norm else nn.Identity()
        self.act = build_activation(activation)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class GlobalAvgPool(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.mean((2, 3), keepdim=True)


class Classifier(nn.Module):
    def __init__(self, in_features: int, out_features: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.dropout(torch.flatten(x, 1)))


def build_static(space, arch) -> nn.Module:
    """An uninitialised static model of ``arch``, as its space builds one (see ``SearchSpace.static_model``)."""
    return space.static_model(arch)


def sequential_model(space, arch) -> nn.Sequential:
    """Layer ``i`` built from ``space.layers(arch)[i]``: the static model of a space whose layers run in a row."""
    return nn.Sequential(*(spec.build(space.bn_momentum, space.bn_eps) for spec in space.layers(arch)))
