"""A subnet of a graph supernet as a plain ``fx.GraphModule``: a copy of the graph with the
dropped blocks removed and every recorded module replaced by a torch layer of the kept size,
holding copies of the supernet's active slices."""

from __future__ import annotations

import copy

import torch
from torch import fx, nn

from elasticnas.supernet.families.graph.resizing import kept_size, with_size
from elasticnas.supernet.families.graph.space import FIXED, GraphArch, LayerRecord


def static_layer(op: LayerRecord, module: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """A fresh torch layer of ``module``'s type and settings, at the sizes of ``state``."""
    weight = state.get("weight")
    if op.kind == "linear":
        layer = nn.Linear(weight.shape[1], weight.shape[0], bias="bias" in state)
    elif op.kind == "linear_t":  # the model's own class, at the kept sizes
        layer = copy.deepcopy(module)
        layer.weight, layer.nf = nn.Parameter(weight.detach().clone()), weight.shape[1]
        if "bias" in state:
            layer.bias = nn.Parameter(state["bias"].detach().clone())
        return layer
    elif op.kind == "embedding":
        layer = nn.Embedding(weight.shape[0], weight.shape[1], module.padding_idx, module.max_norm, module.norm_type,
                             module.scale_grad_by_freq, module.sparse)
    elif op.kind == "layernorm":
        layer = nn.LayerNorm(weight.shape[0] if weight is not None else state["bias"].shape[0], eps=module.eps,
                             elementwise_affine=module.elementwise_affine, bias=module.bias is not None)
    elif op.kind == "batchnorm":
        channels = next(iter(state.values())).shape[0]
        layer = type(module)(channels, module.eps, module.momentum, module.affine, module.track_running_stats)
        if module.num_batches_tracked is not None:
            layer.num_batches_tracked.copy_(module.num_batches_tracked)
    else:
        k, depthwise = weight.shape[-1], op.depthwise
        out_channels = weight.shape[0]
        in_channels, groups = (out_channels, out_channels) if depthwise else (weight.shape[1] * module.groups,
                                                                              module.groups)
        padding = k // 2 if op.kernel != FIXED else module.padding
        k = k if op.kernel != FIXED else module.kernel_size
        layer = nn.Conv2d(in_channels, out_channels, k, module.stride, padding, module.dilation, groups=groups,
                          bias="bias" in state, padding_mode=module.padding_mode)
    own = dict(layer.named_parameters()) | dict(layer.named_buffers())
    for name, tensor in state.items():
        own[name].data.copy_(tensor.detach())
    return layer.to(device=weight.device if weight is not None else "cpu")


def extract_graph(supernet, arch: GraphArch) -> fx.GraphModule:
    """The standalone model of ``arch`` (its outputs equal ``supernet(x, arch)``)."""
    net: fx.GraphModule = supernet.net
    root = copy.deepcopy(net)
    adds, skipped = supernet._dropped(arch)
    running = {op.module for op in supernet.space.ops if op.node not in skipped}
    for name, op in supernet._first.items():
        if name not in running:
            continue  # only dropped blocks call it: the graph below no longer does
        module = net.get_submodule(name)
        state = supernet.sliced(op, arch, module)
        root.set_submodule(name, static_layer(op, module, state).to(next(net.parameters()).device))
    for target in supernet._params:
        owner, _, name = target.rpartition(".")
        parent = root.get_submodule(owner) if owner else root
        sliced = supernet.weight(target, arch).detach().clone()
        if isinstance(getattr(parent, name), nn.Parameter):
            setattr(parent, name, nn.Parameter(sliced, requires_grad=getattr(parent, name).requires_grad))
        elif name in parent._buffers:
            parent.register_buffer(name, sliced)
        else:
            setattr(parent, name, sliced)
    graph = copy.deepcopy(net.graph)
    nodes = {node.name: node for node in graph.nodes}
    kept = dict(enumerate(arch.widths))
    for name, (kind, segments) in supernet._resized.items():  # sizes in calls: the kept channels
        node = nodes[name]
        node.args, node.kwargs = with_size(node.args, dict(node.kwargs), kind, kept_size(kind, segments, kept))
    for add, skip in reversed(adds.items()):  # the last first: a dropped block's skip may be the add before it
        nodes[add].replace_all_uses_with(nodes[skip])
        graph.erase_node(nodes[add])
    for node in reversed(list(graph.nodes)):
        if node.name in skipped or (node.op == "get_attr" and not node.users):  # a dropped block's weights too
            graph.erase_node(node)
    graph.lint()
    return fx.GraphModule(root, graph, f"{type(net).__name__}Subnet")
