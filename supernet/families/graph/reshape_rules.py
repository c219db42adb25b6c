"""The rules of the ops that move, split or join a tensor's axes rather than compute on its values:
flatten, view and reshape (heads split off and merged back), index and slice, expand, permute and
transpose, reductions, concatenation, a fused projection's split, and attention's products over heads.

A mixin of the graph walk (``rules.py``): its methods read ``self.shape``, ``self.of`` and
``self.groups`` and answer the output's layout, or fix what they cannot prove (``self.unknown``).
"""

from __future__ import annotations

import math

import torch
from torch import fx, nn

from elasticnas.supernet.families.graph.layout import Layout


def describe(node: fx.Node, module: nn.Module | None = None) -> str:
    if node.op == "call_module":
        return f"module {node.target!r} ({type(module).__name__})"
    if node.op == "call_method":
        return f"method .{node.target}()"
    return f"{getattr(node.target, '__name__', node.target)}()"


class ReshapeRules:
    def flatten(self, node: fx.Node, layout: Layout | None, shape, start: int, end: int) -> Layout | None:
        if layout is None:
            return None
        rank = len(shape)
        start, end = start % rank, end % rank
        if layout.axis < start:
            return layout
        if layout.axis > end:
            return Layout(layout.axis - (end - start), layout.segments, layout.inner, layout.unit)
        if layout.unit != 1 or any(shape[d] != 1 for d in range(start, layout.axis)):
            return self.unknown(node, f"flattened by {describe(node)} together with the dimensions before it")
        inner = layout.inner * math.prod(shape[layout.axis + 1 : end + 1])
        return Layout(start, layout.segments, inner)

    def view(self, node: fx.Node, layout: Layout | None) -> Layout | None:
        """Views that split channels into heads, merge heads back, flatten trailing dimensions or append
        ones, where no size written into the code counts channels or heads."""
        before, after = self.shape(node.args[0]), self.shapes[node.name]
        sizes = node.args[1] if len(node.args) == 2 and isinstance(node.args[1], (tuple, list)) else node.args[1:]
        if len(sizes) == 1 and isinstance(sizes[0], fx.Node):  # one computed shape: every size follows the tensor
            sizes = [sizes[0]] * len(after)
        if layout is None or len(sizes) != len(after):
            return self.unknown(node)

        def free(position: int) -> bool:  # the size there is -1 or computed, not a number in the code
            return not isinstance(sizes[position], int) or sizes[position] == -1

        last = len(before) - 1
        if layout.axis == last and layout.inner == 1 and layout.unit == 1 and len(after) == len(before) + 1 \
                and after[:-2] == before[:-1] and free(-2):
            unit = after[-1]
            if all(self.groups.split(g, unit, describe(node)) for g in layout.groups()):
                return Layout(last, layout.segments, 1, unit)
            return self.unknown(node)
        if layout.unit > 1 and layout.axis == last - 1 and len(after) == len(before) - 1 and \
                after[:-1] == before[:-2] and before[-1] == layout.unit and free(-1):
            return Layout(len(after) - 1, layout.segments)
        if after == before + (1,) * (len(after) - len(before)) and free(layout.axis):
            return layout
        start = len(after) - 1
        if after[:start] == before[:start] and start <= layout.axis and layout.unit == 1 and free(-1):
            return self.flatten(node, layout, before, start, len(before) - 1)
        return self.unknown(node)

    def index(self, node: fx.Node, layout: Layout | None) -> Layout | None:
        """``x[..., :k, None]``: slices and new axes that leave every channel in place."""
        if self.shape(node.args[0]) is None or layout is None:
            return None if self.shape(node.args[0]) is None else self.unknown(node)
        items = node.args[1] if isinstance(node.args[1], tuple) else (node.args[1],)
        if any(not (i is None or i is Ellipsis or isinstance(i, (slice, int))) for i in items):
            return self.unknown(node)  # indexing with tensors gathers: nothing is provable
        rank = len(self.shape(node.args[0]))
        used = sum(i is not None and i is not Ellipsis for i in items)
        expanded = []
        for item in items:
            expanded += [slice(None)] * (rank - used) if item is Ellipsis else [item]
        axis_in = axis_out = 0
        for item in expanded:
            if item is None:
                axis_out += 1
                continue
            if axis_in == layout.axis:
                return Layout(axis_out, layout.segments, layout.inner, layout.unit) if item == slice(None) \
                    else self.unknown(node, f"sliced along its channels by {describe(node)}")
            axis_in, axis_out = axis_in + 1, axis_out + (not isinstance(item, int))  # an int removes its axis
        return Layout(axis_out + layout.axis - axis_in, layout.segments, layout.inner, layout.unit)

    def split(self, node: fx.Node, layout: Layout | None):
        """A fused projection split along its channels into equal parts: each part becomes its own group."""
        size = node.args[1] if len(node.args) > 1 else node.kwargs.get("split_size_or_sections")
        dim = node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", 0)
        shape = self.shape(node.args[0])
        if layout is None or not isinstance(size, int) or dim % len(shape) != layout.axis or layout.inner != 1 \
                or layout.unit != 1 or len(layout.segments) != 1 or len(node.args[0].users) != 1:
            return self.unknown(node)
        group, channels = layout.segments[0]
        parts = self.groups.refine(group, [size] * (channels // size), self.groups.origin[group]) \
            if channels % size == 0 else None
        if parts is None:
            return self.unknown(node)
        self.resized[node.name] = ("sections", layout)
        return tuple(Layout(layout.axis, ((part, size),)) for part in parts)

    def expand(self, node: fx.Node, layout: Layout | None) -> Layout | None:
        if layout is None:
            return None
        sizes = node.args[1] if len(node.args) == 2 and isinstance(node.args[1], (tuple, list)) else node.args[1:]
        axis = layout.axis + len(self.shapes[node.name]) - len(self.shape(node.args[0]))
        if isinstance(sizes[axis], int) and sizes[axis] != -1:
            return self.unknown(node)
        return Layout(axis, layout.segments, layout.inner, layout.unit)

    def attention(self, node: fx.Node, operands, masks) -> Layout | None:
        """Matrix products over heads (q k^T, weights v, or one scaled-dot-product call): every operand
        keeps its heads on the same batch axis, and they join."""
        layouts = [self.of(a) for a in operands]
        rank = len(self.shapes[node.name] or ())
        first = layouts[0]
        if first is None or any(la is None or la.axis != first.axis for la in layouts) or first.axis >= rank - 2:
            return self.unknown(node)
        for layout in layouts[1:]:
            if not self.groups.join_layouts(first, layout, describe(node)):
                return self.unknown(node)
        for mask in masks:
            shape = self.shape(mask)
            if shape is not None and len(shape) == rank and shape[first.axis] != 1:
                self.groups.fix_layout(first, f"{describe(node)} has a mask per head")
        return first

    def move_axis(self, node: fx.Node, layout: Layout | None) -> Layout | None:
        if layout is None:
            return None
        rank = len(self.shape(node.args[0]))
        values = node.args[1:] if node.kwargs == {} else ()
        if node.target in ("unsqueeze", torch.unsqueeze):
            dim = values[0] % (rank + 1)
            return Layout(layout.axis + (dim <= layout.axis), layout.segments, layout.inner, layout.unit)
        if layout.inner != 1 or not values:
            return self.unknown(node)
        if node.target in ("transpose", torch.transpose):
            a, b = values[0] % rank, values[1] % rank
            axis = b if layout.axis == a else a if layout.axis == b else layout.axis
            return Layout(axis, layout.segments, 1, layout.unit)
        dims = values[0] if isinstance(values[0], (tuple, list)) else values
        dims = [d % rank for d in dims]
        return Layout(dims.index(layout.axis), layout.segments, 1, layout.unit)

    def reduction(self, node: fx.Node, layout: Layout | None) -> Layout | None:
        if layout is None:
            return None
        rank = len(self.shape(node.args[0]))
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        keep = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
        if dims is None or layout.inner != 1 or layout.unit != 1:
            return self.unknown(node)
        dims = [d % rank for d in (dims if isinstance(dims, (tuple, list)) else [dims])]
        if layout.axis in dims:
            if node.target in (torch.mean, "mean") and keep and len(dims) == 1:
                return None  # a norm's statistic over the kept channels (RMSNorm, channels-first layer norm)
            return self.unknown(node, f"reduced over by {describe(node)}")
        shift = 0 if keep else sum(d < layout.axis for d in dims)
        return Layout(layout.axis - shift, layout.segments)

    def concatenate(self, node: fx.Node) -> Layout | None:
        tensors = node.args[0]
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        layouts = [self.of(t) for t in tensors]
        if any(layout is None for layout in layouts):
            return self.unknown(node)
        rank = len(self.shape(tensors[0]))
        if all(layout.axis == dim % rank for layout in layouts):
            if any(layout.inner != 1 or layout.unit != 1 for layout in layouts):
                return self.unknown(node)
            return Layout(layouts[0].axis, tuple(s for layout in layouts for s in layout.segments))
        for layout in layouts[1:]:
            if layout.axis != layouts[0].axis or not self.groups.join_layouts(layouts[0], layout, describe(node)):
                return self.unknown(node)
        return layouts[0]
