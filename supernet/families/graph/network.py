"""The elastic supernet of a captured graph: the graph run node by node with sliced weights.

Each recorded conv, linear and norm call runs functionally on the leading channels its groups
keep (index sets where a concatenation interleaves groups), a large conv on its centred smaller
kernel, and a dropped block's add returns the input it would have added to. Every other node
runs as the original model runs it. ``extract`` writes the same slices into plain torch layers
of a copy of the graph, so a subnet is an ``fx.GraphModule`` needing nothing but torch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn
from torch.func import functional_call

from elasticnas.supernet.arch import Arch
from elasticnas.supernet.families.graph.capture import attribute
from elasticnas.supernet.families.graph.layout import layout_indices, permuted_indices
from elasticnas.supernet.families.graph.resizing import kept_size, with_size
from elasticnas.supernet.families.graph.space import FIXED, GraphArch, GraphSpace, LayerRecord
from elasticnas.supernet.module import ElasticBlock, Supernet


def take(tensor: Tensor | None, dim: int, index: Tensor) -> Tensor | None:
    """``tensor`` along ``dim`` at ``index``: itself when whole, a view for a leading slice, else a gather."""
    if tensor is None or len(index) == tensor.shape[dim]:
        return tensor
    if len(index) == 0 or int(index[-1]) == len(index) - 1:  # indices are increasing: a prefix ends at n-1
        return tensor.narrow(dim, 0, len(index))
    return tensor.index_select(dim, index.to(tensor.device))


class GraphSupernet(Supernet, ElasticBlock):
    """An elasticized model (see :func:`elasticnas.supernet.families.graph.elasticize`)."""

    def __init__(self, space: GraphSpace, net: fx.GraphModule, blocks: dict[str, tuple[int, int, str, tuple]],
                 resized: dict[str, tuple[str, tuple]] | None = None):
        super().__init__(space)
        self.net = net
        self._blocks = blocks  # add node -> (stage, position, skip node, branch nodes)
        self._resized = resized or {}  # node -> (kind, channel segments) of a size written into its call
        self._ops = {op.node: op for op in space.ops if op.kind not in ("parameter", "product")}  # sliced modules
        self._params = {op.module: op for op in space.ops if op.kind == "parameter"}  # weight path -> record
        self._first = {}  # module -> its first recorded call (shared modules slice alike)
        for op in self._ops.values():
            self._first.setdefault(op.module, op)
        self._indices: dict[tuple, dict[str, tuple[Tensor, Tensor]]] = {}
        self.importance_fn = None  # a callable scoring a group's channels from its producers' weights; None: L1
        self.report: list[tuple] = []  # the explain rows of elasticize

    # ----- slicing ------------------------------------------------------------------------
    def _slices(self, arch: GraphArch) -> dict[str, tuple[Tensor, Tensor]]:
        """Kept input and output indices of each recorded module, cached per width choice."""
        key = arch.widths
        if key not in self._indices:
            if len(self._indices) > 256:
                self._indices.clear()
            kept = dict(enumerate(arch.widths))
            self._indices[key] = {name: (layout_indices(op.inputs, op.inner, kept), layout_indices(op.outputs, 1, kept))
                                  for name, op in (*self._first.items(), *self._params.items())}
        return self._indices[key]

    def sliced(self, op: LayerRecord, arch: GraphArch, module: nn.Module) -> dict[str, Tensor]:
        """The active weights of one recorded module, named as its parameters and buffers."""
        inputs, outputs = self._slices(arch)[op.module]
        if op.kind in ("batchnorm", "layernorm"):
            names = ("weight", "bias", "running_mean", "running_var")
            return {n: take(getattr(module, n, None), 0, inputs) for n in names if getattr(module, n, None) is not None}
        if op.kind == "embedding":
            return {"weight": take(module.weight, 1, outputs)}
        if op.kind == "linear_t":  # weight (in, out)
            weight = take(take(module.weight, 1, outputs), 0, inputs)
            return {"weight": weight, **({"bias": take(module.bias, 0, outputs)} if module.bias is not None else {})}
        weight = take(module.weight, 0, outputs)
        if op.reads_inputs:
            weight = take(weight, 1, inputs)
        if op.kernel != FIXED:
            k, full = arch.kernels[op.kernel], weight.shape[-1]
            weight = weight[..., (full - k) // 2 : (full + k) // 2, (full - k) // 2 : (full + k) // 2]
        return {"weight": weight, **({"bias": take(module.bias, 0, outputs)} if module.bias is not None else {})}

    def _run_op(self, op: LayerRecord, module: nn.Module, x: Tensor, arch: GraphArch) -> Tensor:
        state = self.sliced(op, arch, module)
        if op.kind == "linear":
            return F.linear(x, state["weight"], state.get("bias"))
        if op.kind == "linear_t":  # as transformers' Conv1D computes it, so that the full width matches exactly
            weight = state["weight"]
            flat = torch.addmm(state["bias"], x.reshape(-1, x.shape[-1]), weight) if "bias" in state \
                else x.reshape(-1, x.shape[-1]) @ weight
            return flat.view(*x.shape[:-1], weight.shape[1])
        if op.kind == "embedding":
            return F.embedding(x, state["weight"], module.padding_idx, module.max_norm, module.norm_type,
                               module.scale_grad_by_freq, module.sparse)
        if op.kind == "layernorm":
            return F.layer_norm(x, (x.shape[-1],), state.get("weight"), state.get("bias"), module.eps)
        if op.kind == "batchnorm":
            return functional_call(module, state, (x,))
        weight = state["weight"]
        padding = weight.shape[-1] // 2 if op.kernel != FIXED else module.padding
        if module.padding_mode != "zeros":
            x, padding = F.pad(x, module._reversed_padding_repeated_twice, mode=module.padding_mode), 0
        groups = weight.shape[0] if op.depthwise else module.groups
        return F.conv2d(x, weight, state.get("bias"), module.stride, padding, module.dilation, groups)

    def _dropped(self, arch: GraphArch) -> tuple[dict[str, str], set[str]]:
        """Adds of the blocks ``arch`` drops (-> the node each returns) and the nodes not to run."""
        adds, skipped = {}, set()
        for add, (stage, position, skip, branch) in self._blocks.items():
            if arch.depths[stage] <= position:
                adds[add] = skip
                skipped.update(branch)
        return adds, skipped

    # ----- the protocol ----------------------------------------------------------------------
    def forward(self, x: Tensor, arch: Arch | None = None) -> Tensor:
        arch = self.resolve(arch)
        adds, skipped = self._dropped(arch)
        env: dict[str, object] = {}

        def load(value):
            return fx.node.map_arg(value, lambda n: env[n.name])

        for node in self.net.graph.nodes:
            if node.name in skipped:
                continue
            if node.op == "placeholder":
                env[node.name] = x
            elif node.op == "output":
                return load(node.args[0])
            elif node.name in adds:
                env[node.name] = env[adds[node.name]]
            elif node.op == "get_attr":
                env[node.name] = self.weight(node.target, arch)
            elif node.name in self._ops:
                env[node.name] = self._run_op(self._ops[node.name], self.net.get_submodule(node.target),
                                              env[node.args[0].name], arch)
            else:
                env[node.name] = self._call(node, load(node.args), load(node.kwargs), arch)
        raise RuntimeError("the graph has no output node")  # pragma: no cover - fx graphs always end in one

    def weight(self, target: str, arch: GraphArch) -> Tensor:
        """A weight the graph reads directly, sliced to the channels ``arch`` keeps."""
        tensor = attribute(self.net, target)
        op = self._params.get(target)
        return tensor if op is None else take(tensor, op.attrs[1], self._slices(arch)[target][0])

    def _call(self, node: fx.Node, args, kwargs, arch: GraphArch):
        if node.name in self._resized:
            kind, segments = self._resized[node.name]
            args, kwargs = with_size(args, kwargs, kind, kept_size(kind, segments, dict(enumerate(arch.widths))))
        if node.op == "call_module":
            return self.net.get_submodule(node.target)(*args, **kwargs)
        if node.op == "call_function":
            return node.target(*args, **kwargs)
        return getattr(args[0], node.target)(*args[1:], **kwargs)

    def active_state_dict(self, arch: Arch) -> dict[str, Tensor]:
        """The extracted model's state: every weight of the graph, recorded modules sliced for ``arch``."""
        from elasticnas.supernet.families.graph.extraction import extract_graph

        return extract_graph(self, self.space.validate(arch)).state_dict()

    @torch.no_grad()
    def extract(self, arch: Arch | None = None) -> fx.GraphModule:
        from elasticnas.supernet.families.graph.extraction import extract_graph

        return extract_graph(self, self.resolve(arch)).train(self.training)

    # ----- channel order ----------------------------------------------------------------------
    def importance(self, gene: int) -> Tensor:
        """L1 norm of the weights writing each channel of a width gene, summed over its producers (and over
        the parts of a fused producer, such as q, k and v of one projection)."""
        total = torch.zeros(self.space.widths[gene].channels)
        for op in self._first.values():
            if not (op.reads_inputs or op.kind == "embedding"):
                continue
            weight = self.net.get_submodule(op.module).weight.detach()
            weight = weight.t() if op.kind in ("embedding", "linear_t") else weight
            offset = 0
            for g, size in op.outputs:
                if g == gene:
                    rows = weight[offset : offset + size]
                    scores = self.importance_fn([rows]) if self.importance_fn is not None else \
                        rows.abs().flatten(1).sum(1)
                    total += torch.as_tensor(scores).detach().cpu().float()
                offset += size
        return total

    @torch.no_grad()
    def sort_channels(self, optimizer: torch.optim.Optimizer | None = None) -> Tensor | None:
        """Every width gene's channels by importance, largest first, permuting every weight that
        writes or reads them (the function is unchanged); returns the permutations, concatenated."""
        from elasticnas.supernet.reorder import permute_

        orders = []
        for gene in range(len(self.space.widths)):
            unit = self.space.widths[gene].unit  # heads move whole: their channels keep their order
            scores = self.importance(gene).view(-1, unit).sum(1)
            heads = scores.argsort(descending=True, stable=True)
            order = (heads[:, None] * unit + torch.arange(unit)).flatten()
            orders.append(order)
            done = set()  # (tensor, dim) already permuted: a tied weight (embedding = output head) moves once
            for op in self._first.values():
                module = self.net.get_submodule(op.module)
                norm = op.kind in ("batchnorm", "layernorm")
                written = (op.inputs, op.inner) if norm else (op.outputs, 1)
                for segments, inner, dims in ((*written, (0,)), (op.inputs, op.inner, (1,))):
                    if all(g != gene for g, _ in segments):
                        continue
                    index = permuted_indices(segments, inner, gene, order)
                    for name, tensor in self.sliced_parameters(op, module, dims):
                        dim = {"weight@1": 1, "weight@0": 0, "weight": dims[0]}.get(name, 0)
                        if (id(tensor), dim) not in done:
                            done.add((id(tensor), dim))
                            permute_(tensor, index.to(tensor.device), dim, optimizer)
            for op in self._params.values():
                if any(g == gene for g, _ in op.inputs):
                    tensor = attribute(self.net, op.module)
                    index = permuted_indices(op.inputs, 1, gene, order).to(tensor.device)
                    permute_(tensor, index, op.attrs[1], optimizer)
        self._indices.clear()
        return torch.cat(orders) if orders else None

    @staticmethod
    def sliced_parameters(op: LayerRecord, module: nn.Module, dims: tuple[int, ...]):
        """``(name, tensor)`` of the weights indexed by the input (dims (1,)) or output (dims (0,)) channels."""
        if op.kind in ("batchnorm", "layernorm"):
            if dims == (1,):
                return []
            return [(n, t) for n in ("weight", "bias", "running_mean", "running_var")
                    if (t := getattr(module, n, None)) is not None]
        if op.kind == "embedding":  # its features are the weight's columns
            return [] if dims == (1,) else [("weight@1", module.weight)]
        if op.kind == "linear_t":  # weight (in, out): outputs are its columns, inputs its rows
            if dims == (1,):
                return [("weight@0", module.weight)]
            return [("weight@1", module.weight)] + ([("bias", module.bias)] if module.bias is not None else [])
        if dims == (1,):
            return [] if op.depthwise else [("weight", module.weight)]
        return [("weight", module.weight)] + ([("bias", module.bias)] if module.bias is not None else [])
