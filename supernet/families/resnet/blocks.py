"""The layers of a ResNet (Once-for-All's ResNet50D): specs, static modules, elastic modules.

A bottleneck is 1x1 conv -> 3x3 conv (with the stride) -> 1x1 conv, batch norm after each,
ReLU after the first two; its shortcut is the identity or, on a stage's first block, average
pooling with kernel and stride equal to the stride (ceil mode) followed by a 1x1 conv and
batch norm; ReLU after the sum. The stem's middle conv adds its input to its output.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from elasticnas.supernet.layers import ElasticConv2d, ElasticConvBNAct
from elasticnas.supernet.module import ElasticBlock, prefixed
from elasticnas.supernet.reorder import importance_order, permute_, permute_bn_
from elasticnas.supernet.specs import (
    ConvSpec,
    LayerCost,
    LayerSpec,
    conv_cost,
    register_spec,
)
from elasticnas.supernet.static import ConvBNAct


@register_spec
@dataclass(frozen=True)
class ResidualConvSpec(ConvSpec):
    """A 'same' convolution, batch norm and activation whose input is added to its output."""

    def build(self, bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> nn.Module:
        return ResidualConvBNAct(self.in_channels, self.out_channels, self.kernel_size, self.stride,
                                 activation=self.activation, bn_momentum=bn_momentum, bn_eps=bn_eps)


class ResidualConvBNAct(ConvBNAct):
    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x) + x


@register_spec
@dataclass(frozen=True)
class BottleneckSpec(LayerSpec):
    in_channels: int
    mid_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    resolution: int  # input height and width
    downsample: bool  # shortcut: average pool + 1x1 conv + batch norm (else the identity)

    def build(self, bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> nn.Module:
        return Bottleneck(self, bn_momentum, bn_eps)

    def cost(self) -> LayerCost:
        mid, out, res, out_res = self.mid_channels, self.out_channels, self.resolution, self.out_resolution
        convs = [conv_cost(self.in_channels, mid, 1, res), conv_cost(mid, mid, self.kernel_size, out_res),
                 conv_cost(mid, out, 1, out_res)]
        bn = 2 * mid + out
        if self.downsample:
            convs.append(conv_cost(self.in_channels, out, 1, out_res))
            bn += out
        params = sum(p for p, _ in convs) + 2 * bn
        x = self.in_channels * res * res  # alive until the shortcut has read it
        mid_in, mid_out, y = mid * res * res, mid * out_res * out_res, out * out_res * out_res
        stages = [x + mid_in, x + mid_in + mid_out, x + mid_out + y, x + 2 * y if self.downsample else x + y]
        return LayerCost(params, sum(m for _, m in convs), bn, max(stages))


class Shortcut(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, bn_momentum: float, bn_eps: float):
        super().__init__()
        self.pool = nn.AvgPool2d(stride, stride, 0, ceil_mode=True)
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, bn_eps, bn_momentum)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(self.pool(x)))


class Bottleneck(nn.Module):
    def __init__(self, spec: BottleneckSpec, bn_momentum: float = 0.1, bn_eps: float = 1e-5):
        super().__init__()
        bn = {"bn_momentum": bn_momentum, "bn_eps": bn_eps}
        mid = spec.mid_channels
        self.conv1 = ConvBNAct(spec.in_channels, mid, 1, activation="relu", **bn)
        self.conv2 = ConvBNAct(mid, mid, spec.kernel_size, spec.stride, activation="relu", **bn)
        self.conv3 = ConvBNAct(mid, spec.out_channels, 1, **bn)
        self.downsample = (Shortcut(spec.in_channels, spec.out_channels, spec.stride, bn_momentum, bn_eps)
                           if spec.downsample else nn.Identity())

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.conv3(self.conv2(self.conv1(x))) + self.downsample(x))


class ElasticConvLayer(ElasticConvBNAct):
    """A stem conv driven by its spec (``ResidualConvSpec``: its input is added to its output)."""

    def run(self, x: Tensor, spec: ConvSpec) -> Tensor:
        out = self(x, spec.out_channels)
        return out + x if isinstance(spec, ResidualConvSpec) else out

    def spec_state(self, spec: ConvSpec) -> dict[str, Tensor]:
        return self.active_state(self.conv.active_state(spec.in_channels, spec.out_channels), spec.out_channels)


class ElasticBottleneck(ElasticBlock):
    """Bottleneck with elastic input, hidden and output widths (hidden = rounded output x expand)."""

    def __init__(self, max_in: int, max_mid: int, max_out: int, stride: int, downsample: bool,
                 bn_momentum: float, bn_eps: float):
        super().__init__()
        bn = (bn_momentum, bn_eps)
        self.stride = stride
        self.conv1 = ElasticConvBNAct(ElasticConv2d(max_in, max_mid), max_mid, "relu", True, *bn)
        self.conv2 = ElasticConvBNAct(ElasticConv2d(max_mid, max_mid, 3, stride), max_mid, "relu", True, *bn)
        self.conv3 = ElasticConvBNAct(ElasticConv2d(max_mid, max_out), max_out, None, True, *bn)
        self.downsample = ElasticConvBNAct(ElasticConv2d(max_in, max_out), max_out, None, True, *bn) \
            if downsample else None

    def run(self, x: Tensor, spec: BottleneckSpec) -> Tensor:
        out = self.conv3(self.conv2(self.conv1(x, spec.mid_channels), spec.mid_channels), spec.out_channels)
        if self.downsample is None:
            return F.relu(out + x)
        pooled = F.avg_pool2d(x, self.stride, self.stride, 0, ceil_mode=True) if self.stride > 1 else x
        return F.relu(out + self.downsample(pooled, spec.out_channels))

    def residual_output_norm(self) -> nn.Module | None:
        return self.conv3.bn

    def spec_state(self, spec: BottleneckSpec) -> dict[str, Tensor]:
        state = {}
        channels = ((self.conv1, spec.in_channels, spec.mid_channels), (self.conv2, spec.mid_channels,
                    spec.mid_channels), (self.conv3, spec.mid_channels, spec.out_channels))
        for name, (layer, c_in, c_out) in zip(("conv1", "conv2", "conv3"), channels, strict=True):
            state.update(prefixed(name, layer.active_state(layer.conv.active_state(c_in, c_out), c_out)))
        if self.downsample is not None:
            conv = self.downsample.conv.active_state(spec.in_channels, spec.out_channels)
            state.update(prefixed("downsample", self.downsample.active_state(conv, spec.out_channels)))
        return state

    def sort_channels(self, optimizer: torch.optim.Optimizer | None = None) -> Tensor:
        """Once-for-All's order: conv2's outputs by the conv3 weights reading them, then conv1's
        outputs by the conv2 weights reading them. Returns both permutations, stacked."""
        second = importance_order(self.conv3.conv.weight, 1)
        permute_(self.conv3.conv.weight, second, 1, optimizer)
        permute_bn_(self.conv2.bn, second, optimizer)
        permute_(self.conv2.conv.weight, second, 0, optimizer)
        first = importance_order(self.conv2.conv.weight, 1)
        permute_(self.conv2.conv.weight, first, 1, optimizer)
        permute_bn_(self.conv1.bn, first, optimizer)
        permute_(self.conv1.conv.weight, first, 0, optimizer)
        return torch.stack([second, first])

