"""Elastic squeeze-excite: the hidden width follows the active channel count."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from elasticnas.supernet.specs import se_channels


class ElasticSqueezeExcite(nn.Module):
    def __init__(self, max_channels: int, reduction: int = 4, divisor: int = 8):
        super().__init__()
        self.reduction, self.divisor = reduction, divisor
        hidden = se_channels(max_channels, reduction, divisor)
        self.reduce_weight = nn.Parameter(torch.empty(hidden, max_channels, 1, 1))
        self.reduce_bias = nn.Parameter(torch.zeros(hidden))
        self.expand_weight = nn.Parameter(torch.empty(max_channels, hidden, 1, 1))
        self.expand_bias = nn.Parameter(torch.zeros(max_channels))
        nn.init.kaiming_normal_(self.reduce_weight, mode="fan_out")
        nn.init.kaiming_normal_(self.expand_weight, mode="fan_out")

    def forward(self, x: Tensor) -> Tensor:
        state = self.active_state(x.shape[1])
        scale = x.mean((2, 3), keepdim=True)
        scale = F.relu(F.conv2d(scale, state["reduce.weight"], state["reduce.bias"]))
        scale = F.hardsigmoid(F.conv2d(scale, state["expand.weight"], state["expand.bias"]))
        return x * scale

    def active_state(self, channels: int) -> dict[str, Tensor]:
        hidden = se_channels(channels, self.reduction, self.divisor)
        return {
            "reduce.weight": self.reduce_weight[:hidden, :channels],
            "reduce.bias": self.reduce_bias[:hidden],
            "expand.weight": self.expand_weight[:channels, :hidden],
            "expand.bias": self.expand_bias[:channels],
        }
