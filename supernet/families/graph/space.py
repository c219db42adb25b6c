"""The space of a graph-derived supernet: its genes and layer list are data read off the graph.

Genes: the input resolution, one width per elastic channel group (channel counts), one depth
per stage of droppable residual blocks (how many of the first blocks run), one kernel size per
large conv. The layer list holds every conv, linear and norm call with the genes its shapes
depend on and its input's shape at each resolution, so counting, latency tables, predictors
and search work on the space alone, without the model. ``source`` records how to rebuild the
model (an import path and its arguments) for the runs that need its module.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar

from elasticnas.core.errors import ConfigError, InvalidArchitectureError
from elasticnas.supernet.arch import Arch, as_numbers
from elasticnas.supernet.families.graph.specs import (
    GraphConvSpec,
    GraphFixedSpec,
    GraphLinearSpec,
    GraphNormSpec,
    GraphProductSpec,
)
from elasticnas.supernet.space import Gene, LayerSlot, SearchSpace, normalise_fields, sorted_choices

FIXED = -1  # the width gene index of a segment whose channels never change


@dataclass(frozen=True)
class GraphArch(Arch):
    widths: tuple[int, ...] = ()  # channels kept per elastic group
    depths: tuple[int, ...] = ()  # blocks run per stage (the first ones)
    kernels: tuple[int, ...] = ()  # kernel size per elastic conv

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("widths", "depths", "kernels"):
            object.__setattr__(self, name, as_numbers(getattr(self, name), name, integers=True))


@dataclass(frozen=True)
class WidthGene:
    label: str  # the first module writing the group
    channels: int
    choices: tuple[int, ...]
    block: tuple[int, int] | None  # (stage, position) of the one droppable block it lives in
    unit: int = 1  # channels that are kept or dropped together (an attention head's width)


@dataclass(frozen=True)
class DepthGene:
    label: str
    blocks: tuple[str, ...]  # module names of the blocks, in order
    choices: tuple[int, ...]


@dataclass(frozen=True)
class KernelGene:
    module: str
    size: int
    choices: tuple[int, ...]
    block: tuple[int, int] | None


@dataclass(frozen=True)
class LayerRecord:
    """One call of a conv, linear or norm module, as data."""

    node: str
    module: str
    # conv | linear | linear_t (weight stored in x out) | batchnorm | layernorm | embedding | parameter
    # | product (a matrix product of two activations, e.g. attention's; node and module are the call node)
    kind: str
    inputs: tuple[tuple[int, int], ...]  # (width gene or FIXED, channels) per segment
    inner: int  # elements per input channel (a flatten before a linear)
    outputs: tuple[tuple[int, int], ...]
    kernel: int  # kernel gene, or FIXED
    block: tuple[int, int] | None
    # conv: (kernel, stride, padding, dilation) as (h, w) pairs, groups (0: depthwise), bias;
    # linear: (bias,); norm: (per-channel weight tensors,); embedding: (rows,);
    # parameter: (shape, channel axis, trainable); product: ()
    attrs: tuple
    # (resolution, input shape without the batch); a product: (resolution, (batch, m, k, n, k2))
    shapes: tuple[tuple[int, tuple[int, ...]], ...]
    counts_params: bool  # False for the later calls of a shared module

    @property
    def depthwise(self) -> bool:
        return self.kind == "conv" and self.attrs[4] == 0

    @property
    def reads_inputs(self) -> bool:
        """Whether the weight has an input-channel axis to slice (not a norm or depthwise conv)."""
        return self.kind in ("linear", "linear_t") or (self.kind == "conv" and not self.depthwise)


_RECORDS = {"widths": WidthGene, "depths": DepthGene, "kernels": KernelGene, "ops": LayerRecord}


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


@dataclass(frozen=True)
class GraphSpace(SearchSpace):
    arch_type: ClassVar[type] = GraphArch
    shrink_order: ClassVar[tuple[str, ...]] = ("kernel", "depth", "width")
    reorder_dimensions: ClassVar[tuple[str, ...]] = ("width",)
    # the types a saved copy of this space holds (a predictor file keeps its space): trusted on load
    saved_parts: ClassVar[tuple[type, ...]] = (WidthGene, DepthGene, KernelGene, LayerRecord)

    name: str
    num_classes: int
    in_channels: int
    resolutions: tuple[int, ...]
    widths: tuple[WidthGene, ...]
    depths: tuple[DepthGene, ...]
    kernels: tuple[KernelGene, ...]
    ops: tuple[LayerRecord, ...]
    fixed_params: int  # parameters outside every recorded layer
    source: str | None = None  # "package.module:callable" returning the model, or None (built in memory)
    source_args: str = "{}"  # JSON of the keyword arguments of the callable
    weights_sha256: str | None = None  # of the weights file loaded into the model, when one was
    options: str = "{}"  # JSON of the elasticize options the space was derived with
    family: str = "graph"
    bn_momentum: float = 0.1
    bn_eps: float = 1e-5

    def __post_init__(self) -> None:
        normalise_fields(self)
        sorted_choices(self, "resolutions")
        for name, record in _RECORDS.items():
            items = tuple(item if isinstance(item, record) else record(**{f.name: _tuples(v) for f, v in
                                                                        zip(fields(record), _values(item, record),
                                                                            strict=True)})
                          for item in getattr(self, name))
            object.__setattr__(self, name, items)

    @property
    def source_kwargs(self) -> dict[str, Any]:
        return json.loads(self.source_args)

    # ----- the seam -----------------------------------------------------------------
    def _declare_genes(self) -> tuple[Gene, ...]:
        genes = [Gene("resolution", None, "resolution", self.resolutions)]
        depth0 = 1 + len(self.widths)

        def switch(block):
            return None if block is None else (depth0 + block[0], block[1] + 1)

        genes += [Gene("widths", i, "width", w.choices, switch(w.block)) for i, w in enumerate(self.widths)]
        genes += [Gene("depths", i, "depth", d.choices) for i, d in enumerate(self.depths)]
        genes += [Gene("kernels", i, "kernel", k.choices, switch(k.block)) for i, k in enumerate(self.kernels)]
        return tuple(genes)

    def _declare_layers(self) -> tuple[LayerSlot, ...]:
        slots = [LayerSlot(self._slot_genes(op), self._builder(op)) for op in self.ops]
        if self.fixed_params:
            slots.append(LayerSlot((), lambda: GraphFixedSpec(self.fixed_params)))
        return tuple(slots)

    def _slot_genes(self, op: LayerRecord) -> tuple[int, ...]:
        widths = sorted({1 + g for g, _ in (*op.inputs, *op.outputs) if g != FIXED})
        kernel = (1 + len(self.widths) + len(self.depths) + op.kernel,) if op.kernel != FIXED else ()
        depth = (1 + len(self.widths) + op.block[0],) if op.block is not None else ()
        return (0, *widths, *kernel, *depth)

    def _builder(self, op: LayerRecord):
        columns = self._slot_genes(op)
        shapes = dict(op.shapes)

        def build(*values):
            value = dict(zip(columns, values, strict=True))
            if op.block is not None and value[columns[-1]] < op.block[1] + 1:
                return None

            def channels(segments, inner=1):
                return inner * sum(value[1 + g] if g != FIXED else size for g, size in segments)

            c_in = channels(op.inputs, op.inner)
            if op.kind == "embedding":
                return GraphFixedSpec(op.attrs[0] * channels(op.outputs))
            if op.kind == "parameter":
                shape, axis, trainable = op.attrs
                return GraphFixedSpec(math.prod(shape) // shape[axis] * c_in if trainable else 0)
            dims = shapes[value[0]]
            if op.kind == "product":  # its batch holds the heads: it shrinks with their kept channels
                return GraphProductSpec(dims[0] * c_in // sum(size for _, size in op.inputs), *dims[1:])
            if op.kind == "conv":
                kernel, stride, padding, dilation, groups, bias = op.attrs
                if op.kernel != FIXED:
                    k = value[columns[len(columns) - 1 - (op.block is not None)]]
                    kernel, padding = (k, k), (k // 2, k // 2)
                return GraphConvSpec(c_in, channels(op.outputs), kernel, stride, padding, dilation, groups or c_in,
                                     bias, dims[1], dims[2], op.counts_params)
            if op.kind in ("linear", "linear_t"):
                return GraphLinearSpec(c_in, channels(op.outputs), dims[:-1], op.attrs[0], op.counts_params)
            return GraphNormSpec(op.kind, c_in, (c_in, *dims[1:]) if op.kind == "batchnorm" else (*dims[:-1], c_in),
                                 op.attrs[0], op.counts_params)

        return build

    def static_model(self, arch: Arch):
        """The extracted graph of ``arch``, rebuilt from ``source`` (its weights are the source's).
        Through the family registry, where the family's builder is registered: this module is
        below the ones that trace and elasticize a model, and must not import them."""
        from elasticnas.supernet.catalogue import build_supernet

        return build_supernet(self).extract(arch)

    def _checked(self, arch: Arch):
        values = super()._checked(arch)
        for name, records in (("widths", self.widths), ("depths", self.depths), ("kernels", self.kernels)):
            if not records and getattr(arch, name):
                raise InvalidArchitectureError(f"space {self.name!r} has no {name} genes, but the architecture "
                                               f"gives {list(getattr(arch, name))}")
        return values


def _values(item: Any, record: type) -> list:
    if isinstance(item, Mapping):
        missing = [f.name for f in fields(record) if f.name not in item and f.default is MISSING]
        if missing or set(item) - {f.name for f in fields(record)}:
            raise ConfigError(f"a saved {record.__name__} has the keys {[f.name for f in fields(record)]}, "
                              f"but got {sorted(item)}")
        return [item.get(f.name, f.default) for f in fields(record)]
    return list(item)
