"""The inverted-residual block of MobileNetV3: its spec, its static module, its elastic module."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from elasticnas.supernet.layers import ElasticConv2d, ElasticConvBNAct, ElasticDepthwiseConv2d, ElasticSqueezeExcite
from elasticnas.supernet.module import ElasticBlock, prefixed
from elasticnas.supernet.reorder import importance_order, permute_, permute_bn_
from elasticnas.supernet.specs import LayerCost, LayerSpec, conv_cost, middle_channels, register_spec
from elasticnas.supernet.static import ConvBNAct


@register_spec
@dataclass(frozen=True)
class MBConvSpec(LayerSpec):
    """Inverted-residual block: 1x1 expand, kxk depthwise, optional squeeze-excite, 1x1 project."""

    in_channels: int
    mid_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    resolution: int  # input height and width
    activation: str
    se_channels: int  # hidden width of squeeze-excite; 0 when the block has none
    expand: bool  # False when the block has no 1x1 expansion (expand ratio 1)
    residual: bool

    def build(self, bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> nn.Module:
        return MBConv(self, bn_momentum, bn_eps)

    def cost(self) -> LayerCost:
        mid, res, out_res = self.mid_channels, self.resolution, self.out_resolution
        params = macs = bn = 0
        if self.expand:
            p, m = conv_cost(self.in_channels, mid, 1, res)
            params, macs, bn = params + p, macs + m, bn + mid
        p, m = conv_cost(mid, mid, self.kernel_size, out_res, groups=mid)
        params, macs, bn = params + p, macs + m, bn + mid
        if self.se_channels:
            params += 2 * mid * self.se_channels + self.se_channels + mid
            macs += 2 * mid * self.se_channels
        p, m = conv_cost(mid, self.out_channels, 1, out_res)
        params, macs, bn = params + p, macs + m, bn + self.out_channels
        params += 2 * bn  # affine weight and bias of every batch norm
        x = self.in_channels * res * res
        held = x if self.residual else 0  # the block input stays alive for the skip connection
        mid_in, mid_out = mid * res * res, mid * out_res * out_res
        stages = [held + mid_out + self.out_channels * out_res * out_res]  # projection
        stages.append(x + mid_out if not self.expand else held + mid_in + mid_out)  # depthwise
        if self.expand:
            stages.append(x + mid_in)
        if self.se_channels:
            stages.append(held + 2 * mid_out)
        return LayerCost(params, macs, bn, max(stages))


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.expand = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        scale = torch.relu(self.reduce(x.mean((2, 3), keepdim=True)))
        return x * nn.functional.hardsigmoid(self.expand(scale))


class MBConv(nn.Module):
    """Inverted-residual block with fixed widths and kernel size."""

    def __init__(self, spec: MBConvSpec, bn_momentum: float = 0.1, bn_eps: float = 1e-5):
        super().__init__()
        bn = {"bn_momentum": bn_momentum, "bn_eps": bn_eps}
        mid = spec.mid_channels
        self.expand = (
            ConvBNAct(spec.in_channels, mid, 1, activation=spec.activation, **bn) if spec.expand else nn.Identity()
        )
        self.depthwise = ConvBNAct(mid, mid, spec.kernel_size, spec.stride, groups=mid,
                                   activation=spec.activation, **bn)
        self.se = SqueezeExcite(mid, spec.se_channels) if spec.se_channels else nn.Identity()
        self.project = ConvBNAct(mid, spec.out_channels, 1, **bn)
        self.residual = spec.residual

    def forward(self, x: Tensor) -> Tensor:
        out = self.project(self.se(self.depthwise(self.expand(x))))
        return out + x if self.residual else out


class ElasticMBConv(ElasticBlock):
    """Inverted-residual block with elastic kernel size and expand ratio."""

    def __init__(self, in_channels: int, out_channels: int, kernel_choices: tuple[int, ...],
                 expand_choices: tuple[float, ...], stride: int, activation: str, use_se: bool,
                 space, expand: bool = True):
        super().__init__()
        bn = (space.bn_momentum, space.bn_eps)
        self.divisor = space.channel_divisor
        self.out_channels = out_channels
        self.residual = stride == 1 and in_channels == out_channels
        max_mid = middle_channels(in_channels, max(expand_choices), self.divisor) if expand else in_channels
        self.expand = (
            ElasticConvBNAct(ElasticConv2d(in_channels, max_mid), max_mid, activation, True, *bn) if expand else None
        )
        self.depthwise = ElasticConvBNAct(
            ElasticDepthwiseConv2d(max_mid, kernel_choices, stride), max_mid, activation, True, *bn
        )
        self.se = ElasticSqueezeExcite(max_mid, space.se_reduction, self.divisor) if use_se else None
        self.project = ElasticConvBNAct(ElasticConv2d(max_mid, out_channels), out_channels, None, True, *bn)

    def forward(self, x: Tensor, kernel_size: int, expand_ratio: float) -> Tensor:
        out = x
        if self.expand is not None:
            out = self.expand(out, middle_channels(x.shape[1], expand_ratio, self.divisor))
        out = self.depthwise(out, kernel_size)
        if self.se is not None:
            out = self.se(out)
        out = self.project(out, self.out_channels)
        return out + x if self.residual else out

    def residual_output_norm(self) -> nn.Module | None:
        return self.project.bn if self.residual else None

    def active_state(self, spec: MBConvSpec) -> dict[str, Tensor]:
        mid, state = spec.mid_channels, {}
        if self.expand is not None:
            conv = self.expand.conv.active_state(spec.in_channels, mid)
            state.update(prefixed("expand", self.expand.active_state(conv, mid)))
        conv = self.depthwise.conv.active_state(mid, spec.kernel_size)
        state.update(prefixed("depthwise", self.depthwise.active_state(conv, mid)))
        if self.se is not None:
            state.update(prefixed("se", self.se.active_state(mid)))
        conv = self.project.conv.active_state(mid, spec.out_channels)
        state.update(prefixed("project", self.project.active_state(conv, spec.out_channels)))
        return state

    def sort_channels(self, optimizer: torch.optim.Optimizer | None = None) -> Tensor | None:
        """Middle channels by the L1 norm of the projection weights reading them (and the
        squeeze-excite hidden units by the weights reading those), as Once-for-All does."""
        if self.expand is None:
            return None
        if self.se is not None:
            se = self.se
            hidden = importance_order(se.expand_weight, 1)
            permute_(se.reduce_weight, hidden, 0, optimizer)
            permute_(se.reduce_bias, hidden, 0, optimizer)
            permute_(se.expand_weight, hidden, 1, optimizer)
        perm = importance_order(self.project.conv.weight, 1)
        permute_(self.expand.conv.weight, perm, 0, optimizer)
        permute_bn_(self.expand.bn, perm, optimizer)
        permute_(self.depthwise.conv.weight, perm, 0, optimizer)
        permute_bn_(self.depthwise.bn, perm, optimizer)
        if self.se is not None:
            permute_(self.se.reduce_weight, perm, 1, optimizer)
            permute_(self.se.expand_weight, perm, 0, optimizer)
            permute_(self.se.expand_bias, perm, 0, optimizer)
        permute_(self.project.conv.weight, perm, 1, optimizer)
        return perm
