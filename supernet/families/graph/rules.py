"""The channel rules of each op: how a node's output channels relate to its inputs'.

Producers (conv, linear) start a group; norms, activations, pooling and dropout pass the layout
through; elementwise ops between two tensors join their groups; a concatenation along the
channel axis lays its inputs' segments end to end; flatten, view, permute and reductions move
the axis. Any other op that reads a tracked tensor fixes its groups, with the op named as the
reason: a width is made elastic only where every reader of it is understood.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import fx, nn

from elasticnas.supernet.families.graph.capture import is_transposed_linear
from elasticnas.supernet.families.graph.layout import Binding, Groups, Layout
from elasticnas.supernet.families.graph.reshape_rules import ReshapeRules, describe

_ELEMENTWISE_MODULES = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh,
                        nn.LeakyReLU, nn.ELU, nn.Mish, nn.Softplus, nn.Dropout, nn.Identity)
_SPATIAL_MODULES = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Dropout2d,
                    nn.Upsample, nn.ZeroPad2d, nn.ConstantPad2d, nn.ReflectionPad2d, nn.ReplicationPad2d)
_ELEMENTWISE_FUNCTIONS = {torch.relu, torch.sigmoid, torch.tanh, torch.neg, torch.exp, F.relu, F.relu6, F.gelu,
                          F.silu, F.hardswish, F.hardsigmoid, F.sigmoid, F.tanh, F.leaky_relu, F.elu, F.mish,
                          F.softplus, F.dropout, operator.neg, torch.rsqrt, torch.sqrt}
_ELEMENTWISE_METHODS = {"relu", "relu_", "sigmoid", "sigmoid_", "tanh", "exp", "neg", "contiguous", "clone", "float",
                        "hardswish", "clamp", "clamp_", "to", "type_as", "half", "bfloat16", "rsqrt", "sqrt"}
_SPATIAL_FUNCTIONS = {F.adaptive_avg_pool2d, F.adaptive_max_pool2d, F.avg_pool2d, F.max_pool2d, F.interpolate}
_PADS = {F.pad, torch.nn.functional.pad}
_BINARY_FUNCTIONS = {operator.add, operator.iadd, operator.mul, operator.imul, operator.sub, operator.truediv,
                     operator.pow, torch.add, torch.mul, torch.sub, torch.div, torch.pow}
_BINARY_METHODS = {"add", "add_", "mul", "mul_", "sub", "div", "pow"}
_MASKED_FILLS = {torch.masked_fill, "masked_fill", "masked_fill_"}
_SOFTMAX = {F.softmax, torch.softmax, "softmax"}
_MATMUL = {torch.matmul, operator.matmul, torch.bmm, "matmul", "bmm"}
_ADDS = {operator.add, operator.iadd, torch.add, "add", "add_"}
_REDUCTIONS = {torch.mean, torch.sum, torch.amax, "mean", "sum", "amax"}
_SHAPE_READS = {"size", "dim", getattr, len}


def is_residual_add(node: fx.Node, shapes: dict) -> bool:
    """An add of two tensors of the output's own shape (the candidates for ``x + f(x)``)."""
    return (node.op in ("call_function", "call_method") and node.target in _ADDS and len(node.args) == 2
            and all(isinstance(a, fx.Node) and shapes.get(a.name) == shapes[node.name] for a in node.args)
            and not node.kwargs)


class _Walk(ReshapeRules):
    """One pass over the graph in order, giving each tensor node its layout."""

    def __init__(self, module: fx.GraphModule, shapes: dict, groups: Groups):
        self.module, self.shapes, self.groups = module, shapes, groups
        self.layouts: dict[str, Layout | None] = {}
        self.bindings: dict[str, Binding] = {}
        self.opaque: dict[str, str] = {}
        self.parameters: dict[str, Layout] = {}  # weights read through get_attr (a layer scale, an embedding)
        self.resized: dict[str, tuple[str, Layout]] = {}  # calls whose arguments count channels (resizing.py)
        self.products: dict[str, Layout | None] = {}  # matrix products of two activations -> their heads' layout

    def run(self) -> None:
        for node in self.module.graph.nodes:
            self.layouts[node.name] = self.visit(node)

    def of(self, arg) -> Layout | None:
        layout = self.layouts.get(arg.name) if isinstance(arg, fx.Node) else None
        return layout if isinstance(layout, Layout) else None

    def shape(self, arg) -> tuple[int, ...] | None:
        return self.shapes.get(arg.name) if isinstance(arg, fx.Node) else None

    def unknown(self, node: fx.Node, why: str | None = None) -> None:
        module = self.module.get_submodule(node.target) if node.op == "call_module" else None
        reason = why or f"read by {describe(node, module)}, whose channel semantics are unknown"
        for arg in node.all_input_nodes:
            self.groups.fix_layout(self.of(arg), reason)
        return None

    def visit(self, node: fx.Node) -> Layout | None:
        if node.op == "placeholder":
            shape = self.shapes.get(node.name)
            if shape is None or len(shape) < 2:
                return None
            group = self.groups.new(shape[1], "input", fixed="the model's input channels")
            return Layout(1, ((group, shape[1]),))
        if node.op == "get_attr":
            return self.parameter(node)
        if node.op == "output":
            return self.unknown(node, "the model's output")
        if node.op == "call_module":
            return self.visit_module(node, self.module.get_submodule(node.target))
        if self.shapes.get(node.name) is None and node.target in _SHAPE_READS:
            return None  # a size read: whatever uses the number is judged where it is used
        return self.visit_function(node, node.target)

    # ----- modules ------------------------------------------------------------------------
    def visit_module(self, node: fx.Node, module: nn.Module) -> Layout | None:

        x = node.args[0] if node.args else None
        layout, shape = self.of(x), self.shape(x)
        if isinstance(module, nn.Conv2d):
            return self.conv(node, module, layout)
        if isinstance(module, nn.Linear) or is_transposed_linear(module):
            kind = "linear" if isinstance(module, nn.Linear) else "linear_t"
            c_out, c_in = module.weight.shape if kind == "linear" else module.weight.shape[::-1]
            tracked = layout is not None and layout.axis == len(shape) - 1 and layout.channels == c_in
            inputs = layout if tracked else self.untracked(layout, c_in, len(shape) - 1, node)
            return self.produce(node, kind, inputs, c_out, len(shape) - 1)
        if isinstance(module, nn.Embedding):  # token ids in, a new group of features out
            ids = Layout(len(shape), ((self.groups.new(module.num_embeddings, node.target, fixed="token ids"),
                                       module.num_embeddings),))
            return self.produce(node, "embedding", ids, module.embedding_dim, len(shape))
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            tracked = layout is not None and layout.axis == 1 and layout.channels == module.num_features
            inputs = layout if tracked else self.untracked(layout, module.num_features, 1, node)
            self.bindings.setdefault(node.target, Binding("batchnorm", inputs, inputs)).calls.append(node.name)
            return inputs
        if isinstance(module, nn.LayerNorm):
            tracked = (layout is not None and layout.axis == len(shape) - 1
                       and tuple(module.normalized_shape) == (layout.channels,))
            if not tracked:
                return self.untracked_module(node, module, layout)
            self.bindings.setdefault(node.target, Binding("layernorm", layout, layout)).calls.append(node.name)
            return layout
        if isinstance(module, _ELEMENTWISE_MODULES):
            return layout
        if isinstance(module, _SPATIAL_MODULES):
            return layout if layout is not None and layout.axis == 1 and layout.inner == 1 else self.unknown(node)
        if isinstance(module, nn.Flatten):
            return self.flatten(node, layout, shape, module.start_dim, module.end_dim)
        return self.untracked_module(node, module, layout)

    def parameter(self, node: fx.Node) -> Layout | None:
        """A weight read directly: its channels are the last dimension longer than 1, if any."""
        shape = self.shapes.get(node.name)
        long = [d for d, size in enumerate(shape or ()) if size > 1]
        if not long:
            return None
        group = self.groups.new(shape[long[-1]], node.target)
        layout = Layout(long[-1], ((group, shape[long[-1]]),))
        if node.target in self.parameters:  # read twice: both reads keep the same channels
            self.groups.join_layouts(self.parameters[node.target], layout, f"weight {node.target!r}")
        else:
            self.parameters[node.target] = layout
        return layout

    def layer_norm(self, node: fx.Node, layout: Layout | None) -> Layout | None:
        """``F.layer_norm`` over the channels (e.g. a channels-first norm written with permutes)."""
        bound = dict(zip(("input", "normalized_shape", "weight", "bias", "eps"), node.args, strict=False))
        bound |= node.kwargs
        shape = self.shape(bound["input"])
        if layout is None or layout.axis != len(shape) - 1 or layout.inner != 1 or \
                tuple(bound["normalized_shape"]) != (layout.channels,):
            return self.unknown(node)
        for weight in (bound.get("weight"), bound.get("bias")):
            if weight is None:
                continue
            tracked = self.of(weight)
            if tracked is None or tracked.axis != len(self.shape(weight)) - 1 or \
                    not self.groups.join_layouts(layout, tracked, "layer_norm()"):
                return self.unknown(node)
        self.resized[node.name] = ("normalized_shape", layout)
        return layout

    def untracked_module(self, node: fx.Node, module: nn.Module, layout: Layout | None) -> None:
        if any(True for _ in module.parameters()):
            self.opaque.setdefault(node.target, f"{type(module).__name__} is not an op whose channels are understood")
        return self.unknown(node)

    def untracked(self, layout: Layout | None, channels: int, axis: int, node: fx.Node) -> Layout:
        """A fixed layout for a weight reading channels that no tracked layout describes."""
        module = self.module.get_submodule(node.target)
        self.groups.fix_layout(layout, f"read by {describe(node, module)} along another axis or shape")
        group = self.groups.new(channels, node.target, fixed=f"the input of {describe(node, module)} is not tracked")
        return Layout(axis, ((group, channels),))

    def conv(self, node: fx.Node, conv: nn.Conv2d, layout: Layout | None) -> Layout:
        tracked = layout is not None and layout.axis == 1 and layout.inner == 1 and layout.channels == conv.in_channels
        inputs = layout if tracked else self.untracked(layout, conv.in_channels, 1, node)
        if conv.groups == 1:
            return self.produce(node, "conv", inputs, conv.out_channels, 1)

        depthwise = conv.groups == conv.in_channels == conv.out_channels
        if not depthwise:
            self.groups.fix_layout(inputs, f"read by grouped conv {node.target!r} (groups={conv.groups})")
            return self.produce(node, "conv", inputs, conv.out_channels, 1,
                                fixed=f"written by grouped conv {node.target!r} (groups={conv.groups})")
        binding = self.bindings.get(node.target)
        if binding is None:
            self.bindings[node.target] = Binding("conv", inputs, inputs, [node.name])
            return inputs
        self.groups.join_layouts(binding.inputs, inputs, f"shared depthwise conv {node.target!r}")
        binding.calls.append(node.name)
        return binding.outputs

    def produce(self, node: fx.Node, kind: str, inputs: Layout, channels: int, axis: int,
                fixed: str | None = None) -> Layout:
        """The output layout of a conv or linear: a new group, or its first call's (a shared module)."""

        binding = self.bindings.get(node.target)
        if binding is not None:
            self.groups.join_layouts(binding.inputs, inputs, f"shared module {node.target!r}")
            binding.calls.append(node.name)
            return Layout(axis, binding.outputs.segments)
        group = self.groups.new(channels, node.target, fixed=fixed)
        outputs = Layout(axis, ((group, channels),))
        self.bindings[node.target] = Binding(kind, inputs, outputs, [node.name])
        return outputs

    # ----- functions and methods -------------------------------------------------------------
    def visit_function(self, node: fx.Node, target) -> Layout | None:
        args = node.args
        layout = self.of(args[0]) if args else None
        if target in _ELEMENTWISE_FUNCTIONS or target in _ELEMENTWISE_METHODS:
            return layout
        if target in _SPATIAL_FUNCTIONS:
            return layout if layout is not None and layout.axis == 1 and layout.inner == 1 else self.unknown(node)
        if target in _PADS:
            pad = args[1] if len(args) > 1 else node.kwargs.get("pad", ())
            rank = len(self.shape(args[0]))
            return layout if layout is not None and layout.axis < rank - len(pad) // 2 else self.unknown(node)
        if target is F.layer_norm:
            return self.layer_norm(node, layout)
        if target in _BINARY_FUNCTIONS or target in _BINARY_METHODS or target in _MASKED_FILLS:
            return self.elementwise(node)  # masked_fill(x, mask, value): x against its mask
        if target in (torch.flatten, "flatten"):
            start = args[1] if len(args) > 1 else node.kwargs.get("start_dim", 0)
            end = args[2] if len(args) > 2 else node.kwargs.get("end_dim", -1)
            return self.flatten(node, layout, self.shape(args[0]), start, end)
        if target in ("view", "reshape", torch.reshape):
            return self.view(node, layout)
        if target in ("permute", torch.permute, "transpose", torch.transpose, "unsqueeze", torch.unsqueeze):
            return self.move_axis(node, layout)
        if target in _REDUCTIONS:
            return self.reduction(node, layout)
        if target in (torch.cat, torch.concat):
            return self.concatenate(node)
        if target is operator.getitem:
            picked = self.layouts.get(node.args[0].name) if isinstance(node.args[0], fx.Node) else None
            if isinstance(picked, tuple):  # one part of a split
                return picked[node.args[1]] if isinstance(node.args[1], int) else self.unknown(node)
            return self.index(node, layout)
        if target in ("split", torch.split):
            return self.split(node, layout)
        if target == "expand":
            return self.expand(node, layout)
        if target in _SOFTMAX:
            dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
            keeps = layout is not None and dim is not None and dim % len(self.shape(args[0])) != layout.axis
            return layout if keeps else self.unknown(node)
        if target in _MATMUL or target is F.scaled_dot_product_attention:
            return self.product(node)
        return self.unknown(node)

    def product(self, node: fx.Node) -> Layout | None:
        """A matrix product of activations (attention's q k^T and weights v, or one scaled-dot-product
        call): its heads join, and it is recorded so that its MACs are counted."""
        if node.target is F.scaled_dot_product_attention:
            mask = node.args[3] if len(node.args) > 3 else node.kwargs.get("attn_mask")
            layout = self.attention(node, node.args[:3], [mask])
        else:
            layout = self.attention(node, node.args[:2], [])
        if all(len(self.shape(a) or ()) >= 2 for a in node.args[:2]):
            self.products[node.name] = layout
        return layout

    def elementwise(self, node: fx.Node) -> Layout | None:
        out_rank = len(self.shapes[node.name] or ())
        placed = []  # (layout in output axes, operand shape) of each tensor operand
        for arg in node.args[:2]:
            shape = self.shape(arg)
            if shape is None:
                continue
            layout = self.of(arg)
            if layout is not None:
                layout = Layout(out_rank - len(shape) + layout.axis, layout.segments, layout.inner, layout.unit)
            placed.append((layout, shape))
        first, first_shape = next(((la, s) for la, s in placed if la is not None), (None, None))
        if first is None:
            return None
        for layout, shape in placed:
            if layout is None:
                if along_size(shape, first.axis, out_rank) != 1:
                    self.groups.fix_layout(first, f"combined by {describe(node)} with an untracked tensor")
            elif layout is not first and layout.axis != first.axis:
                # channels on different axes: each side's channels stay whole where the other varies along them
                if along_size(shape, first.axis, out_rank) != 1:
                    self.groups.fix_layout(first, f"combined by {describe(node)} with channels along another axis")
                if along_size(first_shape, layout.axis, out_rank) != 1:
                    self.groups.fix_layout(layout, f"combined by {describe(node)} with channels along another axis")
            elif layout is not first and not self.groups.join_layouts(first, layout, describe(node)):
                self.groups.fix_layout(first, f"combined by {describe(node)} along another axis")
                self.groups.fix_layout(layout, f"combined by {describe(node)} along another axis")
        return first


def along_size(shape: tuple[int, ...], axis: int, out_rank: int) -> int:
    """The size of an operand of ``shape`` along output ``axis`` as broadcasting aligns it (1 where it has none)."""
    along = axis - (out_rank - len(shape))
    return shape[along] if along >= 0 else 1


def layouts_of_graph(module: fx.GraphModule, shapes: dict, groups: Groups) -> _Walk:
    walk = _Walk(module, shapes, groups)
    walk.run()
    return walk
