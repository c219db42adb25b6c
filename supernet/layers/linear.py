"""Elastic fully connected layers: active input and output features are leading slices."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from elasticnas.supernet.regularisation import regularising


def leading(tensor: Tensor, dim: int, size: int) -> Tensor:
    """The first ``size`` entries along ``dim``; the tensor itself when that is all of it (a
    full-size slice would still cost an op, and a zero-filled gradient in backward)."""
    return tensor if tensor.shape[dim] == size else tensor.narrow(dim, 0, size)


class ElasticLinear(nn.Module):
    def __init__(self, max_in: int, max_out: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_out, max_in))
        self.bias = nn.Parameter(torch.zeros(max_out)) if bias else None
        nn.init.normal_(self.weight, 0.0, 0.01)

    def forward(self, x: Tensor, out_features: int | None = None) -> Tensor:
        state = self.active_state(x.shape[-1], out_features or self.weight.shape[0])
        return F.linear(x, state["weight"], state.get("bias"))

    def active_state(self, in_features: int, out_features: int) -> dict[str, Tensor]:
        state = {"weight": leading(leading(self.weight, 0, out_features), 1, in_features)}
        if self.bias is not None:
            state["bias"] = leading(self.bias, 0, out_features)
        return state


class ElasticClassifier(ElasticLinear):
    """The classifier of a ``LinearSpec``: flatten, dropout (in training), then the active slice.

    Its static twin is :class:`elasticnas.supernet.static.Classifier`, whose linear layer is ``linear``.
    """

    def run(self, x: Tensor, spec) -> Tensor:
        x = F.dropout(torch.flatten(x, 1), spec.dropout, regularising(self))
        return self(x, spec.out_features)

    def spec_state(self, spec) -> dict[str, Tensor]:
        return {f"linear.{name}": t for name, t in self.active_state(spec.in_features, spec.out_features).items()}
