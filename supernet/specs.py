"""Plain descriptions of the layers an architecture runs, in order.

A space turns an architecture into a tuple of these specs. They are the single source of
truth that the static model is built from (:meth:`LayerSpec.build`), that cost counters sum
over (:meth:`LayerSpec.cost`) and that latency lookup tables key on (:func:`spec_to_dict`),
so the three can never disagree. A family adds its own block types by subclassing
:class:`LayerSpec` and registering the class with :func:`register_spec`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, NamedTuple

from elasticnas.core.errors import ConfigError
from elasticnas.core.registry import Registry

if TYPE_CHECKING:
    from torch import nn


class LayerCost(NamedTuple):
    params: int
    macs: int
    bn_channels: int  # batch-norm channels: each stores a running mean and variance
    peak_elements: int  # activation elements alive at once while the layer runs (batch 1)
    cached_elements: int = 0  # values the layer keeps after its pass (a KV cache's keys and values, batch 1)


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to a multiple of ``divisor``, never more than 10% below it.

    The rounding Once-for-All and MobileNetV3 use for channel counts; reproduced so that
    channel counts, and hence parameter counts, match theirs.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def middle_channels(channels: int, expand_ratio: float, divisor: int = 8) -> int:
    """Hidden width of a block that expands ``channels`` by ``expand_ratio`` (rounded as Once-for-All does)."""
    return make_divisible(round(channels * expand_ratio), divisor)


def se_channels(channels: int, reduction: int = 4, divisor: int = 8) -> int:
    """Hidden width of a squeeze-excite unit over ``channels``."""
    return make_divisible(channels // reduction, divisor)


def conv_output_size(size: int, kernel_size: int, stride: int) -> int:
    """Output height of a 'same'-padded (``kernel_size // 2``) convolution."""
    padding = kernel_size // 2
    return (size + 2 * padding - kernel_size) // stride + 1


def conv_cost(in_c: int, out_c: int, k: int, out_res: int, groups: int = 1) -> tuple[int, int]:
    """``(weights, MACs)`` of a bias-free convolution (Once-for-All's counting convention)."""
    weights = out_c * (in_c // groups) * k * k
    return weights, weights * out_res * out_res


SPEC_TYPES: Registry[type] = Registry("layer spec")


def register_spec(cls: type) -> type:
    """Class decorator: make ``cls`` readable by :func:`spec_from_dict` under its class name."""
    SPEC_TYPES.register(cls.__name__, cls)
    return cls


class LayerSpec:
    """Base of the layer specs (frozen dataclasses): what every consumer asks of a layer."""

    def example_input(self, batch_size: int = 1, generator=None):
        """A random input of this layer, batch first (token ids for a layer that reads them)."""
        import torch

        return torch.randn((batch_size, *self.input_shape), generator=generator)

    def timing_module(self, bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> nn.Module:
        """What a latency table times for this layer: the built module (with its cache, for a layer
        that attends over tokens cached before the one it runs on)."""
        return self.build(bn_momentum, bn_eps)

    @property
    def cached_values_per_token(self) -> int:
        """Values a layer keeps per generated token between forward passes (an attention layer's keys and
        values in a KV cache); 0 for a layer that keeps nothing."""
        return 0

    @property
    def out_resolution(self) -> int:
        """Output height: a 'same'-padded window of ``kernel_size`` with ``stride`` (override otherwise)."""
        return conv_output_size(self.resolution, self.kernel_size, self.stride)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of one input image of this layer."""
        return (self.in_channels, self.resolution, self.resolution)

    def cost(self) -> LayerCost:
        raise NotImplementedError

    def build(self, bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> nn.Module:
        """A freshly initialised static module running this layer."""
        raise NotImplementedError


@register_spec
@dataclass(frozen=True)
class ConvSpec(LayerSpec):
    """Convolution, optional batch norm, optional activation (``activation=None`` for none)."""

    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    resolution: int  # input height and width
    activation: str | None
    batch_norm: bool = True
    bias: bool = False

    def cost(self) -> LayerCost:
        params, macs = conv_cost(self.in_channels, self.out_channels, self.kernel_size, self.out_resolution)
        params += self.out_channels * (int(self.bias) + 2 * int(self.batch_norm))
        bn = self.out_channels if self.batch_norm else 0
        peak = self.in_channels * self.resolution**2 + self.out_channels * self.out_resolution**2
        return LayerCost(params, macs, bn, peak)

    def build(self, bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> nn.Module:
        from elasticnas.supernet.static import ConvBNAct

        return ConvBNAct(self.in_channels, self.out_channels, self.kernel_size, self.stride,
                         activation=self.activation, batch_norm=self.batch_norm, bias=self.bias,
                         bn_momentum=bn_momentum, bn_eps=bn_eps)


@register_spec
@dataclass(frozen=True)
class PoolSpec(LayerSpec):
    """Global average pooling to 1x1."""

    channels: int
    resolution: int

    @property
    def out_resolution(self) -> int:
        return 1

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.resolution, self.resolution)

    def cost(self) -> LayerCost:
        return LayerCost(0, 0, 0, self.channels * self.resolution**2 + self.channels)

    def build(self, bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> nn.Module:
        from elasticnas.supernet.static import GlobalAvgPool

        return GlobalAvgPool()


@register_spec
@dataclass(frozen=True)
class MaxPoolSpec(LayerSpec):
    """Max pooling with 'same'-style padding (``kernel_size // 2``), as after a ResNet stem."""

    channels: int
    kernel_size: int
    stride: int
    resolution: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.resolution, self.resolution)

    def cost(self) -> LayerCost:
        return LayerCost(0, 0, 0, self.channels * (self.resolution**2 + self.out_resolution**2))

    def build(self, bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> nn.Module:
        from torch import nn

        return nn.MaxPool2d(self.kernel_size, self.stride, self.kernel_size // 2)


@register_spec
@dataclass(frozen=True)
class LinearSpec(LayerSpec):
    """Flatten, dropout, then a fully connected layer with bias (the classifier)."""

    in_features: int
    out_features: int
    dropout: float = 0.0

    @property
    def out_resolution(self) -> int:
        return 1

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_features, 1, 1)

    def cost(self) -> LayerCost:
        params = self.in_features * self.out_features + self.out_features
        return LayerCost(params, self.in_features * self.out_features, 0, self.in_features + self.out_features)

    def build(self, bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> nn.Module:
        from elasticnas.supernet.static import Classifier

        return Classifier(self.in_features, self.out_features, self.dropout)


@register_spec
@dataclass(frozen=True)
class QuantizedSpec(LayerSpec):
    """A layer deployed at ``bits`` (8: int8 by the runtime's static post-training quantization).

    The network is the float32 one (same shapes, same counts of parameters and MACs); only how
    a runtime runs it differs, so latency tables key it apart from its float32 twin.
    """

    layer: LayerSpec
    bits: int

    @property
    def resolution(self) -> int:
        return self.layer.resolution

    @property
    def out_resolution(self) -> int:
        return self.layer.out_resolution

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.layer.input_shape

    def cost(self) -> LayerCost:
        return self.layer.cost()

    def build(self, bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> nn.Module:
        """The float32 module: the runtime quantizes it when it is timed or exported."""
        return self.layer.build(bn_momentum, bn_eps)


def spec_precision(spec: LayerSpec) -> int:
    """Bits the layer is deployed at (32 unless it is a :class:`QuantizedSpec`)."""
    return spec.bits if isinstance(spec, QuantizedSpec) else 32


def spec_to_dict(spec: LayerSpec) -> dict:
    if isinstance(spec, QuantizedSpec):
        return {"type": "QuantizedSpec", "bits": spec.bits, "layer": spec_to_dict(spec.layer)}
    return {"type": type(spec).__name__, **asdict(spec)}


def spec_from_dict(data: dict) -> LayerSpec:
    fields = dict(data)
    kind = fields.pop("type", None)
    if kind is None:
        raise ConfigError(f"a layer spec dict needs a 'type'; known types: {SPEC_TYPES.names()}")
    if kind == "QuantizedSpec" and isinstance(fields.get("layer"), dict):
        fields["layer"] = spec_from_dict(fields["layer"])
    return SPEC_TYPES.get(kind)(**fields)
