"""Analytic cost counts from an architecture alone: no module is built, no forward runs.

Conventions (Once-for-All's): a convolution costs ``in_channels / groups * k * k``
multiply-accumulates per output element, a linear layer ``in * out``; biases, batch norm,
activations, pooling and element-wise products are not counted. Parameters are every
trainable tensor of the extracted static model. Each distinct layer is counted once and
cached, so whole spaces are counted at tens of thousands of architectures per second.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache, lru_cache
from typing import NamedTuple

import numpy as np

from elasticnas.supernet.layout import ConvSpec, LayerSpec, LinearSpec, MBConvSpec, PoolSpec


class LayerCost(NamedTuple):
    params: int
    macs: int
    bn_channels: int  # batch-norm channels: each stores a running mean and variance
    peak_elements: int  # activation elements alive at once while the layer runs (batch 1)


def _conv(in_c: int, out_c: int, k: int, out_res: int, groups: int = 1) -> tuple[int, int]:
    weights = out_c * (in_c // groups) * k * k
    return weights, weights * out_res * out_res


@cache
def layer_cost(spec: LayerSpec) -> LayerCost:
    """Parameters, MACs, BN channels and peak live activations of one layer."""
    if isinstance(spec, ConvSpec):
        params, macs = _conv(spec.in_channels, spec.out_channels, spec.kernel_size, spec.out_resolution)
        params += spec.out_channels * (int(spec.bias) + 2 * int(spec.batch_norm))
        bn = spec.out_channels if spec.batch_norm else 0
        peak = spec.in_channels * spec.resolution**2 + spec.out_channels * spec.out_resolution**2
        return LayerCost(params, macs, bn, peak)
    if isinstance(spec, MBConvSpec):
        return _mbconv_cost(spec)
    if isinstance(spec, PoolSpec):
        return LayerCost(0, 0, 0, spec.channels * spec.resolution**2 + spec.channels)
    if isinstance(spec, LinearSpec):
        params = spec.in_features * spec.out_features + spec.out_features
        return LayerCost(params, spec.in_features * spec.out_features, 0, spec.in_features + spec.out_features)
    raise TypeError(f"cannot count a {type(spec).__name__}")


def _mbconv_cost(spec: MBConvSpec) -> LayerCost:
    mid, res, out_res = spec.mid_channels, spec.resolution, spec.out_resolution
    params = macs = bn = 0
    if spec.expand:
        p, m = _conv(spec.in_channels, mid, 1, res)
        params, macs, bn = params + p, macs + m, bn + mid
    p, m = _conv(mid, mid, spec.kernel_size, out_res, groups=mid)
    params, macs, bn = params + p, macs + m, bn + mid
    if spec.se_channels:
        hidden = spec.se_channels
        params += 2 * mid * hidden + hidden + mid
        macs += 2 * mid * hidden
    p, m = _conv(mid, spec.out_channels, 1, out_res)
    params, macs, bn = params + p, macs + m, bn + spec.out_channels
    params += 2 * bn  # affine weight and bias of every batch norm

    x = spec.in_channels * res * res
    held = x if spec.residual else 0  # the block input stays alive for the skip connection
    mid_in, mid_out = mid * res * res, mid * out_res * out_res
    stages = [held + mid_out + spec.out_channels * out_res * out_res]  # projection
    stages.append(x + mid_out if not spec.expand else held + mid_in + mid_out)  # depthwise
    if spec.expand:
        stages.append(x + mid_in)
    if spec.se_channels:
        stages.append(held + 2 * mid_out)
    return LayerCost(params, macs, bn, max(stages))


def _costs(space, arch) -> list[LayerCost]:
    return [layer_cost(spec) for spec in space.layers(arch)]


def count_params(space, arch) -> int:
    """Trainable parameters of the subnet ``arch`` of ``space`` (as its extracted model has)."""
    return sum(c.params for c in _costs(space, arch))


def count_macs(space, arch) -> int:
    """Multiply-accumulates of one image at the architecture's resolution."""
    return sum(c.macs for c in _costs(space, arch))


def model_size_bytes(space, arch, bytes_per_value: int = 4) -> int:
    """Bytes of the exported weights: parameters plus BN running mean and variance."""
    costs = _costs(space, arch)
    return bytes_per_value * sum(c.params + 2 * c.bn_channels for c in costs)


def peak_activation_bytes(space, arch, batch_size: int = 1, bytes_per_value: int = 4) -> int:
    """Estimated peak activation memory of inference.

    The largest set of activations alive at once in a layer-by-layer executor that frees
    a tensor as soon as nothing reads it: a layer's input and output, and for an
    inverted-residual block its intermediate tensors and, with a skip connection, its input.
    """
    return batch_size * bytes_per_value * max(c.peak_elements for c in _costs(space, arch))


def count_all(space, archs: Iterable) -> dict[str, np.ndarray]:
    """All counters for many architectures at once, as int64 arrays keyed by metric name.

    Vectorised: every cost is a per-resolution constant plus one term per active block that
    depends on that block's own genes (peak memory: a maximum instead of a sum), so a table
    per space turns counting into array lookups; exact integers, as the per-layer count.
    """
    archs = list(archs)
    names = ("params", "macs", "size_bytes", "peak_activation_bytes")
    if not archs:
        return {name: np.zeros(0, dtype=np.int64) for name in names}
    fixed, blocks = _cost_arrays(space)
    genes = space.encode(archs)
    s, n = space.num_stages, space.num_slots
    depths = np.asarray(space.depth_choices)[genes[:, 1 : 1 + s]]
    active = np.tile(np.arange(space.max_depth), s)[None, :] < np.repeat(depths, space.max_depth, axis=1)
    res, slots = genes[:, 0], np.arange(n)[None, :]
    per_block = blocks[res[:, None], slots, genes[:, 1 + s : 1 + s + n], genes[:, 1 + s + n :]]  # (archs, n, 4)
    per_block = per_block * active[..., None]
    totals = fixed[res, :3] + per_block[..., :3].sum(axis=1)
    peak = np.maximum(fixed[res, 3], per_block[..., 3].max(axis=1))
    params, macs, bn = totals[:, 0], totals[:, 1], totals[:, 2]
    return dict(zip(names, (params, macs, 4 * (params + 2 * bn), 4 * peak), strict=True))


@lru_cache(maxsize=16)
def _cost_arrays(space) -> tuple[np.ndarray, np.ndarray]:
    """``fixed[res] = (params, macs, bn, peak)`` and ``blocks[res, slot, kernel, expand] = (...)``."""
    fields = lambda c: (c.params, c.macs, c.bn_channels, c.peak_elements)  # noqa: E731
    fixed = np.zeros((len(space.resolutions), 4), dtype=np.int64)
    blocks = np.zeros((len(space.resolutions), space.num_slots, len(space.kernel_choices),
                       len(space.expand_choices), 4), dtype=np.int64)
    for r, resolution in enumerate(space.resolutions):
        fixed_specs, block_specs = space.layer_choices(resolution)
        costs = np.array([fields(layer_cost(spec)) for spec in fixed_specs], dtype=np.int64)
        fixed[r] = (*costs[:, :3].sum(axis=0), costs[:, 3].max())
        for (slot, kernel, expand), spec in block_specs.items():
            k, e = space.kernel_choices.index(kernel), space.expand_choices.index(expand)
            blocks[r, slot, k, e] = fields(layer_cost(spec))
    return fixed, blocks
