"""Convolution (dense or depthwise), optional batch norm and activation, all elastic."""

from __future__ import annotations

from torch import Tensor, nn

from elasticnas.supernet.layers.activation import build_activation
from elasticnas.supernet.layers.norm import ElasticBatchNorm2d


class ElasticConvBNAct(nn.Module):
    """``conv(x, *args)``, then batch norm and activation over the channels the conv produced."""

    def __init__(self, conv: nn.Module, channels: int, activation: str | None, batch_norm: bool,
                 momentum: float, eps: float):
        super().__init__()
        self.conv = conv
        self.bn = ElasticBatchNorm2d(channels, eps, momentum) if batch_norm else None
        self.act = build_activation(activation)

    def forward(self, x: Tensor, *args) -> Tensor:
        x = self.conv(x, *args)
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x)

    def active_state(self, conv_state: dict[str, Tensor], channels: int) -> dict[str, Tensor]:
        state = {f"conv.{k}": v for k, v in conv_state.items()}
        if self.bn is not None:
            state.update({f"bn.{k}": v for k, v in self.bn.active_state(channels).items()})
        return state
