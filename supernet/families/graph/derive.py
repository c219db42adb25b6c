"""From an analysed graph to a :class:`GraphSpace`: which groups, stages and kernels become genes,
each layer call as a record, and the ``--explain`` rows saying what stayed fixed and why."""

from __future__ import annotations

import functools
import json
import os

from torch import fx, nn

from elasticnas.supernet.families.graph.analysis import Analysis
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
    groups, report = analysis.groups, []
    stages = analysis.stages if options.depth else []
    block_of = {node: (s, p) for s, stage in enumerate(stages) for p, block in enumerate(stage)
                for node in block.branch}
    depths, blocks = [], {}
    for s, stage in enumerate(stages):
        labels = tuple(block.label for block in stage)
        prefix = os.path.commonprefix(labels).rstrip(".") or labels[0]
        depths.append(DepthGene(prefix, labels, tuple(range(len(stage) // 2, len(stage) + 1))))
        report.append(("depth", prefix, len(stage), list(depths[-1].choices), "blocks " + ", ".join(labels)))
        for p, block in enumerate(stage):
            blocks[block.add] = (s, p, block.skip, tuple(sorted(block.branch)))

    gene_of, widths = {}, []
    layouts = [layout for b in analysis.bindings.values() for layout in (b.outputs, b.inputs)]
    seen = dict.fromkeys(groups.find(g) for layout in (*layouts, *analysis.parameters.values())
                         for g, _ in groups.expand(layout.segments))
    for root in seen:
        size, reason, unit = groups.size[root], groups.reason(root), groups.unit.get(root, 1)
        choices = tuple(sorted({max(1, round(size // unit * f)) * unit for f in options.width})) \
            if options.width else ()
        if reason is None and len(choices) < 2:
            reason = "width is off" if not options.width else f"{size} channels give no smaller distinct width"
        if reason is not None:
            report.append(("width", groups.origin[root], size, "fixed", reason))
            continue
        readers = {block_of.get(call) for b in analysis.bindings.values() for call in b.calls
                   if root in {groups.find(g) for g, _ in groups.expand(b.inputs.segments + b.outputs.segments)}}
        block = next(iter(readers)) if len(readers) == 1 else None
        gene_of[root] = len(widths)
        widths.append(WidthGene(groups.origin[root], size, choices, block, unit))
        report.append(("width", groups.origin[root], size, list(choices),
                       f"{size // unit} heads of {unit} channels" if unit > 1 else ""))

    kernels, kernel_of = [], {}
    for module, size in (analysis.kernels.items() if options.kernel else ()):
        kernel_of[module] = len(kernels)
        kernels.append(KernelGene(module, size, tuple(range(3, size + 1, 2)),
                                  block_of.get(analysis.bindings[module].calls[0])))
        report.append(("kernel", module, size, list(kernels[-1].choices), ""))

    def segments(layout: Layout) -> tuple:
        return tuple((gene_of.get(groups.find(g), FIXED), size) for g, size in groups.expand(layout.segments))

    ops, counted = [], set()  # ids of the weights some record counts (a tied weight once)
    nodes = {node.name: node for node in graph.graph.nodes}
    for module_name, binding in analysis.bindings.items():
        module = graph.get_submodule(module_name)
        counted.update(id(p) for p in module.parameters())
        for i, call in enumerate(binding.calls):
            source = nodes[call].args[0].name
            ops.append(LayerRecord(call, module_name, binding.kind, segments(binding.inputs), binding.inputs.inner,
                                   segments(binding.outputs), kernel_of.get(module_name, FIXED), block_of.get(call),
                                   _attrs(binding.kind, module),
                                   tuple((r, shapes[source][1:]) for r, shapes in sorted(by_resolution.items())),
                                   i == 0))
    for target, layout in analysis.parameters.items():
        tensor = functools.reduce(getattr, target.split("."), graph)
        reader = next(iter(nodes[n] for n in nodes if nodes[n].op == "get_attr" and nodes[n].target == target))
        first_user = next(iter(reader.users), None)
        counted.add(id(tensor))
        ops.append(LayerRecord(reader.name, target, "parameter", segments(layout), 1, segments(layout), FIXED,
                               block_of.get(first_user.name) if first_user is not None else None,
                               (tuple(tensor.shape), layout.axis, isinstance(tensor, nn.Parameter)), (), True))
    resized = {node: (kind, segments(layout)) for node, (kind, layout) in analysis.resized.items()}
    report += [("module", m, "-", "fixed", why) for m, why in analysis.opaque.items()]
    outside = sum(p.numel() for p in graph.parameters() if id(p) not in counted)
    space = GraphSpace(name=name, num_classes=num_classes, in_channels=in_channels,
                       resolutions=tuple(sorted(by_resolution)), widths=tuple(widths), depths=tuple(depths),
                       kernels=tuple(kernels), ops=tuple(ops), fixed_params=outside,
                       options=json.dumps(provenance.pop("options"), sort_keys=True), **provenance)
    report.insert(0, ("resolution", "input", max(space.resolutions), list(space.resolutions), ""))
    return space, blocks, resized, report
