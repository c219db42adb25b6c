"""Plain descriptions of the layers an architecture runs, in order.

A space turns an :class:`~elasticnas.supernet.arch.Arch` into a tuple of these specs. They
are the single source of truth that the static model is built from, that cost counters
sum over and that latency lookup tables key on, so the three can never disagree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Union


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


def middle_channels(in_channels: int, expand_ratio: float, divisor: int = 8) -> int:
    """Width of an inverted-residual block's expanded (depthwise) stage."""
    return make_divisible(round(in_channels * expand_ratio), divisor)


def se_channels(channels: int, reduction: int = 4, divisor: int = 8) -> int:
    """Hidden width of a squeeze-excite unit over ``channels``."""
    return make_divisible(channels // reduction, divisor)


def conv_output_size(size: int, kernel_size: int, stride: int) -> int:
    """Output height of a 'same'-padded (``kernel_size // 2``) convolution."""
    padding = kernel_size // 2
    return (size + 2 * padding - kernel_size) // stride + 1


@dataclass(frozen=True)
class ConvSpec:
    """Convolution, optional batch norm, optional activation (``activation=None`` for none)."""

    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    resolution: int  # input height and width
    activation: str | None
    batch_norm: bool = True
    bias: bool = False

    @property
    def out_resolution(self) -> int:
        return conv_output_size(self.resolution, self.kernel_size, self.stride)


@dataclass(frozen=True)
class MBConvSpec:
    """Inverted-residual block: 1x1 expand, kxk depthwise, optional squeeze-excite, 1x1 project."""

    in_channels: int
    mid_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    resolution: int  # input height and width
    activation: str
    se_channels: int  # hidden width of squeeze-excite; 0 when the block has none
    expand: bool  # False when the block has no 1x1 expansion (expand ratio 1)
    residual: bool

    @property
    def out_resolution(self) -> int:
        return conv_output_size(self.resolution, self.kernel_size, self.stride)


@dataclass(frozen=True)
class PoolSpec:
    """Global average pooling to 1x1."""

    channels: int
    resolution: int

    @property
    def out_resolution(self) -> int:
        return 1


@dataclass(frozen=True)
class LinearSpec:
    """Flatten, dropout, then a fully connected layer with bias (the classifier)."""

    in_features: int
    out_features: int
    dropout: float = 0.0

    @property
    def out_resolution(self) -> int:
        return 1


LayerSpec = Union[ConvSpec, MBConvSpec, PoolSpec, LinearSpec]  # noqa: UP007 - runtime alias on 3.10
SPEC_TYPES = {cls.__name__: cls for cls in (ConvSpec, MBConvSpec, PoolSpec, LinearSpec)}


def spec_to_dict(spec: LayerSpec) -> dict:
    return {"type": type(spec).__name__, **asdict(spec)}


def spec_from_dict(data: dict) -> LayerSpec:
    fields = dict(data)
    return SPEC_TYPES[fields.pop("type")](**fields)
