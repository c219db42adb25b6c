"""Analytic cost counts from an architecture alone: no module is built, no forward runs.

Conventions (Once-for-All's): a convolution costs ``in_channels / groups * k * k``
multiply-accumulates per output element, a linear layer ``in * out``; biases, batch norm,
activations, pooling and element-wise products are not counted. Parameters are every
trainable tensor of the extracted static model. Bytes (model size, activations) count 4 per
value, or 1 for a subnet deployed at int8. Each distinct layer is counted once and
cached, so whole spaces are counted at tens of thousands of architectures per second.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache, lru_cache

import numpy as np

from elasticnas.supernet.specs import LayerCost, LayerSpec, spec_precision


@cache
def layer_cost(spec: LayerSpec) -> LayerCost:
    """Parameters, MACs, BN channels and peak live activations of one layer."""
    return spec.cost()


def _costs(space, arch) -> list[LayerCost]:
    return [layer_cost(spec) for spec in space.layers(arch)]


def count_params(space, arch) -> int:
    """Trainable parameters of the subnet ``arch`` of ``space`` (as its extracted model has)."""
    return sum(c.params for c in _costs(space, arch))


def count_macs(space, arch) -> int:
    """Multiply-accumulates of one image at the architecture's resolution."""
    return sum(c.macs for c in _costs(space, arch))


def model_size_bytes(space, arch, bytes_per_value: int | None = None) -> int:
    """Bytes of the exported weights: parameters plus BN running mean and variance
    (``bytes_per_value`` defaults to the architecture's precision: 4 for float32, 1 for int8)."""
    costs = _costs(space, arch)
    return (bytes_per_value or arch.precision // 8) * sum(c.params + 2 * c.bn_channels for c in costs)


def peak_activation_bytes(space, arch, batch_size: int = 1, bytes_per_value: int | None = None) -> int:
    """Estimated peak activation memory of inference.

    The largest set of activations alive at once in a layer-by-layer executor that frees
    a tensor as soon as nothing reads it: a layer's input and output, and for an
    inverted-residual block its intermediate tensors and, with a skip connection, its input.
    """
    return batch_size * (bytes_per_value or arch.precision // 8) * max(c.peak_elements for c in _costs(space, arch))


def kv_cache_bytes(space, arch, context: int, batch_size: int = 1, bytes_per_value: int | None = None) -> int:
    """Bytes of the KV cache of a language model holding ``context`` tokens per sequence (0 for a model
    without one): each attention layer's keys and values, ``2 x kv heads x head dim`` values per token."""
    per_token = sum(spec.cached_values_per_token for spec in space.layers(arch))
    return batch_size * context * per_token * (bytes_per_value or arch.precision // 8)


def inference_memory_bytes(space, arch, context: int | None = None, batch_size: int = 1) -> int:
    """Weights plus the KV cache at ``context`` tokens (default: the architecture's own context length,
    its ``resolution``): the memory a deployed language model holds, exact from the architecture
    (``count_all``'s ``memory_bytes`` for whole populations, at each one's own context)."""
    context = arch.resolution if context is None else context
    return model_size_bytes(space, arch) + kv_cache_bytes(space, arch, context, batch_size)


def count_all(space, archs: Iterable) -> dict[str, np.ndarray]:
    """All counters for many architectures at once, as int64 arrays keyed by metric name.

    Vectorised: the space maps each architecture to the ids of its layers (one table lookup
    per layer position, whatever the dependencies between positions), and every distinct
    layer is counted once; exact integers, as the per-layer count.
    """
    archs = list(archs)
    names = ("params", "macs", "size_bytes", "peak_activation_bytes", "kv_cache_bytes", "memory_bytes")
    if not archs:
        return {name: np.zeros(0, dtype=np.int64) for name in names}
    per_layer = _cost_matrix(space)[space.layer_ids(space.encode(archs))]  # (archs, positions, 6); id -1: zeros
    params, macs, bn = (per_layer[..., i].sum(axis=1) for i in range(3))
    width = per_layer[..., 5]  # bytes per value
    size = ((per_layer[..., 0] + 2 * per_layer[..., 2]) * width).sum(axis=1)
    peak = (per_layer[..., 3] * width).max(axis=1)
    cache = (per_layer[..., 4] * width).sum(axis=1)
    return dict(zip(names, (params, macs, size, peak, cache, size + cache), strict=True))


@lru_cache(maxsize=16)
def _cost_matrix(space) -> np.ndarray:
    """``(params, macs, bn, peak, cached, bytes per value)`` of each of the space's distinct layers, then
    zeros (id -1)."""
    rows = [(*layer_cost(spec), spec_precision(spec) // 8) for spec in space.distinct_layers] + [(0,) * 6]
    return np.array(rows, dtype=np.int64)
