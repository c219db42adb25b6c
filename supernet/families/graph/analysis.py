"""Passes over a captured graph: channel groups (widths), residual blocks (depth), large kernels.

One pass walks the nodes in order and gives each tensor its channel :class:`Layout`, joining
and fixing groups as the ops demand (see ``rules.py``); a second finds the blocks ``x + f(x)``
whose branch ``f`` reads nothing but ``x`` and is read by nothing but the add, and chains
consecutive ones into stages. Results are plain data keyed by node and module names.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import fx, nn

from elasticnas.supernet.families.graph.layout import Binding, Groups, Layout
from elasticnas.supernet.families.graph.rules import is_residual_add, layouts_of_graph


@dataclass(frozen=True)
class Block:
    add: str  # the add node giving the block's output
    skip: str  # the node added back
    branch: frozenset[str]  # the nodes of f, run only for the add
    label: str  # the module the add belongs to, for --explain


@dataclass
class Analysis:
    groups: Groups
    layouts: dict[str, Layout | None]
    bindings: dict[str, Binding]
    opaque: dict[str, str]  # module -> why its weights stay whole
    parameters: dict[str, Layout]  # weights read directly (get_attr) -> their layout
    resized: dict[str, tuple[str, Layout]]  # calls whose arguments count channels -> (kind, input layout)
    products: dict[str, Layout | None]  # matrix products of activations -> the layout of their heads, if tracked
    stages: list[list[Block]]
    kernels: dict[str, int]  # conv module -> its largest (odd, >= 5) kernel size


def analyse(module: fx.GraphModule, shapes: dict[str, tuple[int, ...] | None]) -> Analysis:
    groups = Groups()
    walk = layouts_of_graph(module, shapes, groups)
    return Analysis(groups, walk.layouts, walk.bindings, walk.opaque, walk.parameters, walk.resized, walk.products,
                    _stages(module, shapes), _kernels(module, walk.bindings))


def _branch(skip: fx.Node, start: fx.Node) -> set[fx.Node] | None:
    """Nodes computing ``start`` from ``skip`` alone (None when a path reaches another input)."""
    found, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node is skip or node in found:
            continue
        if node.op == "placeholder":
            return None
        found.add(node)
        todo += [n for n in node.all_input_nodes if n.op != "get_attr"]
    return found


def _blocks(module: fx.GraphModule, shapes) -> list[Block]:
    blocks = []
    for node in module.graph.nodes:
        if not is_residual_add(node, shapes):
            continue
        for skip, start in ((node.args[0], node.args[1]), (node.args[1], node.args[0])):
            skip = _through_identity(module, skip)
            branch = _branch(skip, start)
            if not branch or not any(n.op == "call_module" for n in branch):
                continue
            if all(user in branch or user is node for n in branch for user in n.users):
                stack = node.meta.get("nn_module_stack") or {}
                label = next(reversed(stack.values()))[0] if stack else node.name
                blocks.append(Block(node.name, skip.name, frozenset(n.name for n in branch), label))
                break
    return blocks


def _stages(module: fx.GraphModule, shapes) -> list[list[Block]]:
    stages: list[list[Block]] = []
    blocks = _blocks(module, shapes)
    inside = {node for block in blocks for node in block.branch}
    for block in (b for b in blocks if b.add not in inside):  # the outermost: a block's depth gene drops all of it
        if stages and stages[-1][-1].add == _after_pointwise(module, block.skip):
            stages[-1].append(block)
        else:
            stages.append([block])
    return stages


def _kernels(module: fx.GraphModule, bindings: dict[str, Binding]) -> dict[str, int]:
    kernels = {}
    for name, binding in bindings.items():
        conv = module.get_submodule(name)
        if binding.kind != "conv" or not isinstance(conv, nn.Conv2d):
            continue
        k = conv.kernel_size
        if (k[0] == k[1] and k[0] >= 5 and k[0] % 2 and conv.dilation == (1, 1) and conv.padding_mode == "zeros"
                and conv.padding == (k[0] // 2, k[0] // 2)):
            kernels[name] = k[0]
    return kernels


def _after_pointwise(module: fx.GraphModule, name: str, steps: int = 2) -> str:
    """The node ``name`` is computed from by at most ``steps`` one-input ops (an activation after a
    residual add), so that a block after ``relu(x + f(x))`` continues the same stage."""
    node = next(n for n in module.graph.nodes if n.name == name)
    for _ in range(steps):
        inputs = node.all_input_nodes
        if node.op not in ("call_function", "call_method", "call_module") or len(inputs) != 1:
            break
        node = inputs[0]
    return node.name


def _through_identity(module: fx.GraphModule, node: fx.Node) -> fx.Node:
    """The node an ``nn.Identity`` call passes on (a shortcut written as a module), else ``node``."""
    while node.op == "call_module" and isinstance(module.get_submodule(node.target), nn.Identity):
        node = node.args[0]
    return node
