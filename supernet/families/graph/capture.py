"""Graph capture for the graph-derived family: ``torch.fx`` tracing with torch.nn's layers as
leaves, run on a real example so that every proxy also carries its concrete value.

Code that branches on shapes or sizes (``if x.shape[1] != channels``, ``int(h / 2)``), as most
model zoos' code does, traces: the graph is specialised to the example's shapes, as
``torch.export`` specialises, and the family checks each other input size by tracing it again.
Branching on tensor *values* has no static graph: it fails with one line naming the submodule
being traced and what to do, instead of fx's traceback.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence

import torch
from torch import Tensor, fx, nn

from elasticnas.core.errors import ElasticNASError


class GraphCaptureError(ElasticNASError, ValueError):
    """A model whose computation cannot be captured as a static graph."""


def attribute(root: nn.Module, path: str):
    """The weight, buffer or constant at a dotted ``path`` below ``root`` (what an fx get_attr node reads)."""
    return functools.reduce(getattr, path.split("."), root)


def is_transposed_linear(module: nn.Module) -> bool:
    """GPT-2's ``Conv1D`` (in ``transformers``): a linear layer whose weight is stored (in, out), run as
    ``addmm(bias, x, weight)``. Recognised by its shape and fields, so the family imports no model zoo."""
    weight = module._parameters.get("weight")  # not getattr: while tracing, fx hands out proxies for weights
    return (type(module).__name__ == "Conv1D" and isinstance(weight, Tensor) and weight.dim() == 2
            and getattr(module, "nf", None) == weight.shape[1])


def runs_whole(module: nn.Module, leaves: Sequence[type] = ()) -> bool:
    """Whether capture keeps ``module`` as one call: a leaf class the user names, or a torch layer running
    torch's own forward (a model zoo's renamed Conv2d too; containers are traced through)."""
    inherited = type(module).forward.__module__.startswith("torch.nn.modules.") and not isinstance(
        module, (nn.Sequential, nn.ModuleList, nn.ModuleDict))
    return isinstance(module, tuple(leaves)) or inherited or is_transposed_linear(module)


class _Concrete:
    """What a traced value may be asked in Python: its length, or an int, from its concrete value."""

    def __len__(self) -> int:
        return len(self.tracer.value_of(self, "len()"))

    def __int__(self) -> int:
        return int(self.tracer.value_of(self, "int()"))

    def __getattr__(self, name: str):
        return _ConcreteAttribute(self, name)


class _ConcreteProxy(_Concrete, fx.Proxy):
    pass


class _ConcreteAttribute(_Concrete, fx.proxy.Attribute):
    pass


class _Tracer(fx.Tracer):
    """fx's tracer computing every node's value on the example, and remembering which submodule it
    is inside so that a failure can name it."""

    def __init__(self, example: Tensor, leaves: Sequence[type] = ()):
        super().__init__()
        self.leaves = tuple(leaves)
        self.path: list[str] = []
        self.failed_in: list[str] | None = None
        self.inputs = [example]
        self.values: dict[fx.Node, object] = {}
        self.concrete = False  # True while a node's value is computed: modules then run for real

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return runs_whole(module, self.leaves) or super().is_leaf_module(module, qualified_name)

    def call_module(self, module, forward, args, kwargs):
        if self.concrete:
            return forward(*args, **kwargs)
        self.path.append(self.path_of_module(module))
        try:
            return super().call_module(module, forward, args, kwargs)
        except Exception:
            if self.failed_in is None:
                self.failed_in = list(self.path)
            raise
        finally:
            self.path.pop()

    def getattr(self, attr: str, attr_val, parameter_proxy_cache: dict):
        return attr_val if self.concrete else super().getattr(attr, attr_val, parameter_proxy_cache)

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _ConcreteProxy(node, self)

    def create_proxy(self, kind, target, args, kwargs, name=None, type_expr=None, proxy_factory_fn=None):
        proxy = super().create_proxy(kind, target, args, kwargs, name, type_expr, proxy_factory_fn)
        node = proxy.node
        concrete = fx.node.map_arg((node.args, node.kwargs), self._value)
        self.concrete = True
        try:
            with torch.no_grad():
                self.values[node] = self._run(node, *concrete)
        finally:
            self.concrete = False
        return proxy

    def _value(self, node: fx.Node):
        if node not in self.values and node.op == "get_attr":  # a buffer or constant fx added itself
            self.values[node] = attribute(self.root, node.target)
        return self.values[node]

    def _run(self, node: fx.Node, args, kwargs):
        if node.op == "placeholder":
            return self.inputs.pop(0) if self.inputs else (args[0] if args else None)
        if node.op == "get_attr":
            return attribute(self.root, node.target)
        if node.op == "call_module":
            return self.root.get_submodule(node.target)(*args, **kwargs)
        if node.op == "call_function":
            return node.target(*args, **kwargs)
        if node.op == "call_method":
            return getattr(args[0], node.target)(*args[1:], **kwargs)
        return None

    def value_of(self, proxy: fx.Proxy, use: str):
        value = self.values[proxy.node]
        if isinstance(value, Tensor):
            raise fx.proxy.TraceError(f"control flow on tensor values ({use} of a tensor) has no static graph")
        return value

    def to_bool(self, obj: fx.Proxy) -> bool:
        return bool(self.value_of(obj, "a condition"))

    def iter(self, obj: fx.Proxy):
        return iter([obj[i] for i in range(len(self.value_of(obj, "iterating")))])


def capture(model: nn.Module, example: Tensor, leaves: Sequence[type] = ()) -> fx.GraphModule:
    """``model`` as an fx GraphModule sharing its parameters, specialised to ``example``'s shapes;
    ``leaves`` are module classes to keep whole (the way out for a submodule fx cannot trace)."""
    tracer = _Tracer(example, leaves)
    parameters = list(inspect.signature(model.forward).parameters.values())[1:]
    concrete = {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}
    was_training = model.training
    try:
        graph = tracer.trace(model.eval(), concrete_args=concrete or None)
    except Exception as error:  # fx raises TraceError, TypeError, RuntimeError... from user code
        first = " ".join(str(error).split()).split(" While executing")[0][:200]
        if not tracer.failed_in:
            raise GraphCaptureError(
                f"cannot capture {type(model).__name__} as a graph: in its own forward: {first}; make that code "
                f"shape-static (no branches or loops on tensor values), or move the dynamic part into a submodule "
                f"and keep it whole as a leaf (leaves=[ThatModule], CLI --leaf MODULE:CLASS)") from None
        where = tracer.failed_in[-1]
        kind = type(model.get_submodule(where)).__name__
        raise GraphCaptureError(
            f"cannot capture {type(model).__name__} as a graph: in {where!r} ({kind}): {first}; make its code "
            f"shape-static (no branches or loops on tensor values), or keep it whole as a leaf (leaves=[{kind}], "
            f"CLI --leaf MODULE:{kind}): its weights then stay fixed") from None
    finally:
        model.train(was_training)
    module = fx.GraphModule(model, graph, type(model).__name__).train(was_training)
    module.graph.eliminate_dead_code()  # sizes read only to be baked into constants (int(x.shape[2] / 2)) are dead
    module.recompile()
    return module


class _ShapeRecorder(fx.Interpreter):
    def __init__(self, module: fx.GraphModule):
        super().__init__(module)
        self.shapes: dict[str, tuple[int, ...] | None] = {}

    def run_node(self, node: fx.Node):
        result = super().run_node(node)
        self.shapes[node.name] = tuple(result.shape) if isinstance(result, Tensor) else None
        return result


def node_shapes(module: fx.GraphModule, example: Tensor) -> dict[str, tuple[int, ...] | None]:
    """The shape (batch dimension included) of every node's output on ``example``; None where a node
    gives no tensor. Raises what running the model raises (e.g. a flatten-linear at another size)."""
    was_training = module.training
    recorder = _ShapeRecorder(module.eval())
    try:
        with torch.no_grad():
            recorder.run(example)
    finally:
        module.train(was_training)
    return recorder.shapes
