"""Layer specs of graph-derived supernets: one per conv, linear, norm or activation product call,
with exact shapes.

Each spec builds the static torch layer it describes (what a latency table times) and counts it
as the rest of elasticnas does: a conv ``in / groups * k * k`` MACs per output element, a linear
``in * out`` per token, a product of (m x k) by (k x n) matrices ``m * k * n``, norms none. A call
of a module another call already counted (a shared module) costs its MACs again but no parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from elasticnas.supernet.specs import LayerCost, LayerSpec, register_spec


@register_spec
@dataclass(frozen=True)
class GraphConvSpec(LayerSpec):
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    bias: bool
    height: int  # of the input
    width: int
    counts_params: bool = True  # False for the second call of a shared module

    @property
    def resolution(self) -> int:
        return self.height

    @property
    def out_size(self) -> tuple[int, int]:
        return tuple((size + 2 * p - d * (k - 1) - 1) // s + 1 for size, k, s, p, d in zip(
            (self.height, self.width), self.kernel_size, self.stride, self.padding, self.dilation, strict=True))

    @property
    def out_resolution(self) -> int:
        return self.out_size[0]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.in_channels, self.height, self.width)

    def cost(self) -> LayerCost:
        weights = self.out_channels * (self.in_channels // self.groups) * math.prod(self.kernel_size)
        params = (weights + self.out_channels * self.bias) * self.counts_params
        out_elements = math.prod(self.out_size)
        return LayerCost(params, weights * out_elements, 0,
                         self.in_channels * self.height * self.width + self.out_channels * out_elements)

    def build(self, bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> nn.Module:
        return nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding,
                         self.dilation, groups=self.groups, bias=self.bias)


class _Unplaced(LayerSpec):
    """A layer with no image plane (tokens, features, a weight alone): resolution 1 in and out."""

    @property
    def resolution(self) -> int:
        return 1

    @property
    def out_resolution(self) -> int:
        return 1


@register_spec
@dataclass(frozen=True)
class GraphLinearSpec(_Unplaced):
    in_features: int
    out_features: int
    tokens: tuple[int, ...]  # the input's dimensions between the batch and the features
    bias: bool
    counts_params: bool = True

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (*self.tokens, self.in_features)

    def cost(self) -> LayerCost:
        weights = self.in_features * self.out_features
        count = math.prod(self.tokens)
        return LayerCost((weights + self.out_features * self.bias) * self.counts_params, weights * count, 0,
                         count * (self.in_features + self.out_features))

    def build(self, bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> nn.Module:
        return nn.Linear(self.in_features, self.out_features, bias=self.bias)


@register_spec
@dataclass(frozen=True)
class GraphNormSpec(LayerSpec):
    """Batch norm (channels on axis 1) or layer norm (over the last axis)."""

    kind: str  # batchnorm | layernorm
    channels: int
    dims: tuple[int, ...]  # the input's shape without the batch
    affine: int  # per-channel weight tensors: 2 (scale and shift), 1 (scale only) or 0
    counts_params: bool = True

    @property
    def resolution(self) -> int:
        return self.dims[-1] if self.kind == "batchnorm" and len(self.dims) == 3 else 1

    @property
    def out_resolution(self) -> int:
        return self.resolution

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.dims

    def cost(self) -> LayerCost:
        params = self.channels * self.affine * self.counts_params
        running = self.channels * (self.kind == "batchnorm") * self.counts_params
        return LayerCost(params, 0, running, 2 * math.prod(self.dims))

    def build(self, bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> nn.Module:
        if self.kind == "layernorm":
            return nn.LayerNorm(self.channels, eps=bn_eps, elementwise_affine=self.affine > 0, bias=self.affine == 2)
        norm = nn.BatchNorm2d if len(self.dims) == 3 else nn.BatchNorm1d
        return norm(self.channels, bn_eps, bn_momentum, affine=self.affine > 0)


@register_spec
@dataclass(frozen=True)
class GraphProductSpec(_Unplaced):
    """A matrix product of two activations, ``batch`` products of (m x k) by (k x n), followed (k2 > 0) by
    a second product of the (m x n) result by (n x k2): attention's two products in one call."""

    batch: int
    m: int
    k: int
    n: int
    k2: int = 0

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.batch, self.m, self.k)

    def cost(self) -> LayerCost:
        return LayerCost(0, self.batch * self.m * self.n * (self.k + self.k2), 0,
                         self.batch * (self.m * self.k + self.k * self.n + self.m * self.n + self.m * self.k2))

    def build(self, bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> nn.Module:
        return _Product(self.batch, self.k, self.n, self.k2)


class _Product(nn.Module):
    """What a latency table times for a product: the input times a second operand of the recorded size."""

    def __init__(self, batch: int, k: int, n: int, k2: int):
        super().__init__()
        self.register_buffer("right", torch.randn(batch, k, n) / k**0.5)
        self.register_buffer("second", torch.randn(batch, n, k2) / max(1, n) ** 0.5 if k2 else None)

    def forward(self, x: Tensor) -> Tensor:
        y = torch.matmul(x, self.right)
        return torch.matmul(y, self.second) if self.second is not None else y


@register_spec
@dataclass(frozen=True)
class GraphFixedSpec(_Unplaced):
    """Weights outside every traced conv, linear and norm (e.g. a module kept whole): counted, not timed."""

    params: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (1,)

    def cost(self) -> LayerCost:
        return LayerCost(self.params, 0, 0, 0)

    def build(self, bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> nn.Module:
        return nn.Identity()
