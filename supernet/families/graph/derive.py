"""From an analysed graph to a :class:`GraphSpace`: which groups, stages and kernels become genes,
each layer call as a record, and the ``--explain`` rows saying what stayed fixed and why."""

from __future__ import annotations

import json
import math
import os

import torch.nn.functional as F
from torch import fx, nn

from elasticnas.supernet.families.graph.analysis import Analysis
from elasticnas.supernet.families.graph.capture import attribute
from elasticnas.supernet.families.graph.layout import Layout
from elasticnas.supernet.families.graph.space import (
    FIXED,
    DepthGene,
    GraphSpace,
    KernelGene,
    LayerRecord,
    WidthGene,
)


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _conv_attrs(conv: nn.Conv2d) -> tuple:
    kernel = _pair(conv.kernel_size)
    padding = conv.padding
    if padding == "valid":
        padding = (0, 0)
    elif padding == "same":
        padding = tuple(d * (k - 1) // 2 for d, k in zip(_pair(conv.dilation), kernel, strict=True))
    depthwise = conv.groups == conv.in_channels == conv.out_channels and conv.groups > 1
    return (kernel, _pair(conv.stride), _pair(padding), _pair(conv.dilation), 0 if depthwise else conv.groups,
            conv.bias is not None)


def _attrs(kind: str, module: nn.Module) -> tuple:
    if kind == "conv":
        return _conv_attrs(module)
    if kind in ("linear", "linear_t"):
        return (module.bias is not None,)
    if kind == "embedding":
        return (module.num_embeddings,)
    return (sum(getattr(module, n, None) is not None for n in ("weight", "bias")),)


def derive_space(graph: fx.GraphModule, analysis: Analysis, by_resolution: dict, options, name: str,
                 num_classes: int, in_channels: int, provenance: dict):
    """``(space, blocks, resized, report)``: the space, the droppable blocks by add node, the calls whose
    arguments count channels (kind and channel segments by node), the explain rows."""
    derived = _Derivation(analysis, options)
    depths, blocks = derived.depth_genes()
    widths, kernels = derived.width_genes(), derived.kernel_genes()
    ops, outside = derived.records(graph, by_resolution)
    resized = {node: (kind, derived.segments(layout)) for node, (kind, layout) in analysis.resized.items()}
    space = GraphSpace(name=name, num_classes=num_classes, in_channels=in_channels,
                       resolutions=tuple(sorted(by_resolution)), widths=widths, depths=depths, kernels=kernels,
                       ops=ops, fixed_params=outside, options=json.dumps(provenance.pop("options"), sort_keys=True),
                       **provenance)
    report = [("resolution", "input", max(space.resolutions), list(space.resolutions), ""), *derived.report]
    report += [("module", m, "-", "fixed", why) for m, why in analysis.opaque.items()]
    return space, blocks, resized, report


class _Derivation:
    """The genes and layer records of one analysed graph, and the explain rows saying why."""

    def __init__(self, analysis: Analysis, options):
        self.analysis, self.options, self.groups = analysis, options, analysis.groups
        self.stages = analysis.stages if options.depth else []
        self.block_of = {node: (s, p) for s, stage in enumerate(self.stages) for p, block in enumerate(stage)
                         for node in block.branch}
        self.gene_of: dict[int, int] = {}  # group root -> width gene
        self.kernel_of: dict[str, int] = {}  # conv module -> kernel gene
        self.report: list[tuple] = []

    def segments(self, layout: Layout) -> tuple:
        return tuple((self.gene_of.get(self.groups.find(g), FIXED), size)
                     for g, size in self.groups.expand(layout.segments))

    def depth_genes(self) -> tuple[tuple[DepthGene, ...], dict]:
        depths, blocks = [], {}
        for s, stage in enumerate(self.stages):
            labels = tuple(block.label for block in stage)
            prefix = os.path.commonprefix(labels).rstrip(".") or labels[0]
            depths.append(DepthGene(prefix, labels, tuple(range(len(stage) // 2, len(stage) + 1))))
            self.report.append(("depth", prefix, len(stage), list(depths[-1].choices), "blocks " + ", ".join(labels)))
            for p, block in enumerate(stage):
                blocks[block.add] = (s, p, block.skip, tuple(sorted(block.branch)))
        return tuple(depths), blocks

    def width_genes(self) -> tuple[WidthGene, ...]:
        groups, bindings, fractions = self.groups, self.analysis.bindings.values(), self.options.width
        layouts = [layout for b in bindings for layout in (b.outputs, b.inputs)]
        seen = dict.fromkeys(groups.find(g) for layout in (*layouts, *self.analysis.parameters.values())
                             for g, _ in groups.expand(layout.segments))
        widths = []
        for root in seen:
            size, reason, unit = groups.size[root], groups.reason(root), groups.unit.get(root, 1)
            choices = tuple(sorted({max(1, round(size // unit * f)) * unit for f in fractions})) if fractions else ()
            if reason is None and len(choices) < 2:
                reason = "width is off" if not fractions else f"{size} channels give no smaller distinct width"
            if reason is not None:
                self.report.append(("width", groups.origin[root], size, "fixed", reason))
                continue
            readers = {self.block_of.get(call) for b in bindings for call in b.calls
                       if root in {groups.find(g) for g, _ in groups.expand(b.inputs.segments + b.outputs.segments)}}
            self.gene_of[root] = len(widths)
            widths.append(WidthGene(groups.origin[root], size, choices, next(iter(readers)) if len(readers) == 1
                                    else None, unit))
            self.report.append(("width", groups.origin[root], size, list(choices),
                                f"{size // unit} heads of {unit} channels" if unit > 1 else ""))
        return tuple(widths)

    def kernel_genes(self) -> tuple[KernelGene, ...]:
        kernels = []
        for module, size in (self.analysis.kernels.items() if self.options.kernel else ()):
            self.kernel_of[module] = len(kernels)
            kernels.append(KernelGene(module, size, tuple(range(3, size + 1, 2)),
                                      self.block_of.get(self.analysis.bindings[module].calls[0])))
            self.report.append(("kernel", module, size, list(kernels[-1].choices), ""))
        return tuple(kernels)

    def records(self, graph: fx.GraphModule, by_resolution: dict) -> tuple[tuple[LayerRecord, ...], int]:
        """One record per call of a sliced module and per weight read directly; and the parameters outside
        every record (a tied weight is counted once)."""
        ops, counted = [], set()
        nodes = {node.name: node for node in graph.graph.nodes}
        for module_name, binding in self.analysis.bindings.items():
            module = graph.get_submodule(module_name)
            counted.update(id(p) for p in module.parameters())
            for i, call in enumerate(binding.calls):
                source = nodes[call].args[0].name
                shapes = tuple((r, found[source][1:]) for r, found in sorted(by_resolution.items()))
                ops.append(LayerRecord(call, module_name, binding.kind, self.segments(binding.inputs),
                                       binding.inputs.inner, self.segments(binding.outputs),
                                       self.kernel_of.get(module_name, FIXED), self.block_of.get(call),
                                       _attrs(binding.kind, module), shapes, i == 0))
        for target, layout in self.analysis.parameters.items():
            tensor = attribute(graph, target)
            reader = next(n for n in nodes.values() if n.op == "get_attr" and n.target == target)
            first_user = next(iter(reader.users), None)
            counted.add(id(tensor))
            ops.append(LayerRecord(reader.name, target, "parameter", self.segments(layout), 1, self.segments(layout),
                                   FIXED, self.block_of.get(first_user.name) if first_user is not None else None,
                                   (tuple(tensor.shape), layout.axis, isinstance(tensor, nn.Parameter)), (), True))
        ops += [self._product(nodes[name], layout, by_resolution) for name, layout in self.analysis.products.items()]
        return tuple(ops), sum(p.numel() for p in graph.parameters() if id(p) not in counted)

    def _product(self, node: fx.Node, layout: Layout | None, by_resolution: dict) -> LayerRecord:
        """A matrix product of activations as a record: ``(batch, m, k, n, k2)`` per resolution, costing
        ``batch * m * n * (k + k2)`` MACs (k2: the second product of one attention call), its batch (the
        heads) shrinking with the kept channels of ``layout``."""
        def dims(found: dict) -> tuple[int, ...]:
            a, b = (found[arg.name][1:] for arg in node.args[:2])
            if node.target is F.scaled_dot_product_attention:
                v = found[node.args[2].name][1:]
                return (math.prod(a[:-2]), a[-2], a[-1], b[-2], v[-1])
            out = found[node.name][1:]
            return (math.prod(out[:-2]), out[-2] if len(out) > 1 else 1, a[-1], out[-1], 0)

        segments = self.segments(layout) if layout is not None else ((FIXED, 1),)
        shapes = tuple((r, dims(found)) for r, found in sorted(by_resolution.items()))
        return LayerRecord(node.name, node.name, "product", segments, 1, segments, FIXED, self.block_of.get(node.name),
                           (), shapes, True)
