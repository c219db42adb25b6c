"""Elastic fully connected layer: active input and output features are leading slices."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


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
        state = {"weight": self.weight[:out_features, :in_features]}
        if self.bias is not None:
            state["bias"] = self.bias[:out_features]
        return state
