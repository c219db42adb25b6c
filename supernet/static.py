"""Static (non-elastic) modules: what an extracted subnet is made of.

They are ordinary torch layers, built from layer specs alone, so a subnet can be rebuilt
from its architecture JSON and a safetensors file, scripted with TorchScript and exported
to ONNX. Parameter names match the supernet's ``active_state_dict`` names.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from elasticnas.supernet.layers.activation import build_activation
from elasticnas.supernet.layout import ConvSpec, LayerSpec, LinearSpec, MBConvSpec, PoolSpec


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


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.expand = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        scale = torch.relu(self.reduce(x.mean((2, 3), keepdim=True)))
        return x * nn.functional.hardsigmoid(self.expand(scale))


class MBConv(nn.Module):
    """Inverted-residual block with fixed widths and kernel size."""

    def __init__(self, spec: MBConvSpec, bn_momentum: float = 0.1, bn_eps: float = 1e-5):
        super().__init__()
        bn = {"bn_momentum": bn_momentum, "bn_eps": bn_eps}
        mid = spec.mid_channels
        self.expand = (
            ConvBNAct(spec.in_channels, mid, 1, activation=spec.activation, **bn) if spec.expand else nn.Identity()
        )
        self.depthwise = ConvBNAct(mid, mid, spec.kernel_size, spec.stride, groups=mid,
                                   activation=spec.activation, **bn)
        self.se = SqueezeExcite(mid, spec.se_channels) if spec.se_channels else nn.Identity()
        self.project = ConvBNAct(mid, spec.out_channels, 1, **bn)
        self.residual = spec.residual

    def forward(self, x: Tensor) -> Tensor:
        out = self.project(self.se(self.depthwise(self.expand(x))))
        return out + x if self.residual else out


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


def build_layer(spec: LayerSpec, bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> nn.Module:
    if isinstance(spec, ConvSpec):
        return ConvBNAct(spec.in_channels, spec.out_channels, spec.kernel_size, spec.stride,
                         activation=spec.activation, batch_norm=spec.batch_norm, bias=spec.bias,
                         bn_momentum=bn_momentum, bn_eps=bn_eps)
    if isinstance(spec, MBConvSpec):
        return MBConv(spec, bn_momentum, bn_eps)
    if isinstance(spec, PoolSpec):
        return GlobalAvgPool()
    if isinstance(spec, LinearSpec):
        return Classifier(spec.in_features, spec.out_features, spec.dropout)
    raise TypeError(f"no static layer for {type(spec).__name__}")


def build_static(space, arch) -> nn.Sequential:
    """An uninitialised static model of ``arch``: layer ``i`` is built from ``space.layers(arch)[i]``."""
    specs = space.layers(arch)
    return nn.Sequential(*(build_layer(s, space.bn_momentum, space.bn_eps) for s in specs))
