"""The elastic MobileNetV3 supernet (Once-for-All's design, without hidden state).

``set_active(arch)`` selects a subnet; ``forward`` runs it (or the ``arch`` passed in).
Blocks receive their kernel size and expand ratio as arguments, so no module keeps an
"active" setting of its own. ``extract(arch)`` builds the static twin and copies the
active slices into it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from elasticnas.supernet.arch import Arch
from elasticnas.supernet.layers import (
    ElasticBatchNorm2d,
    ElasticConv2d,
    ElasticDepthwiseConv2d,
    ElasticLinear,
    ElasticSqueezeExcite,
    build_activation,
)
from elasticnas.supernet.layout import MBConvSpec, middle_channels
from elasticnas.supernet.space import MobileNetV3Space
from elasticnas.supernet.static import build_static


def _prefixed(prefix: str, state: dict[str, Tensor]) -> dict[str, Tensor]:
    return {f"{prefix}.{name}": tensor for name, tensor in state.items()}


class ElasticConvBNAct(nn.Module):
    """Convolution (dense or depthwise), optional batch norm and activation, all elastic."""

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
        state = _prefixed("conv", conv_state)
        if self.bn is not None:
            state.update(_prefixed("bn", self.bn.active_state(channels)))
        return state


class ElasticMBConv(nn.Module):
    """Inverted-residual block with elastic kernel size and expand ratio."""

    def __init__(self, in_channels: int, out_channels: int, kernel_choices: tuple[int, ...],
                 expand_choices: tuple[float, ...], stride: int, activation: str, use_se: bool,
                 space: MobileNetV3Space, expand: bool = True):
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

    def active_state(self, spec: MBConvSpec) -> dict[str, Tensor]:
        mid, state = spec.mid_channels, {}
        if self.expand is not None:
            conv = self.expand.conv.active_state(spec.in_channels, mid)
            state.update(_prefixed("expand", self.expand.active_state(conv, mid)))
        conv = self.depthwise.conv.active_state(mid, spec.kernel_size)
        state.update(_prefixed("depthwise", self.depthwise.active_state(conv, mid)))
        if self.se is not None:
            state.update(_prefixed("se", self.se.active_state(mid)))
        conv = self.project.conv.active_state(mid, spec.out_channels)
        state.update(_prefixed("project", self.project.active_state(conv, spec.out_channels)))
        return state


class MobileNetV3Supernet(nn.Module):
    """Elastic MobileNetV3 over a :class:`MobileNetV3Space`.

    >>> from elasticnas.supernet import create_supernet
    >>> net = create_supernet("tiny_mbv3", num_classes=10, in_channels=1)
    >>> arch = net.space.sample(0)
    >>> net.set_active(arch)
    >>> net.eval()(torch.zeros(2, 1, arch.resolution, arch.resolution)).shape
    torch.Size([2, 10])
    """

    def __init__(self, space: MobileNetV3Space):
        super().__init__()
        self.space = space
        bn = (space.bn_momentum, space.bn_eps)
        self.stem = ElasticConvBNAct(
            ElasticConv2d(space.in_channels, space.stem_channels, 3, space.stem_stride),
            space.stem_channels, space.stem_activation, True, *bn,
        )
        self.first_block = ElasticMBConv(
            space.stem_channels, space.first_block_channels, (3,), (1,), 1, space.first_block_activation,
            space.first_block_se, space, expand=False,
        )
        blocks, channels = [], space.first_block_channels
        for stage, out in enumerate(space.stage_channels):
            for block in range(space.max_depth):
                stride = space.stage_strides[stage] if block == 0 else 1
                blocks.append(ElasticMBConv(
                    channels, out, space.kernel_choices, space.expand_choices, stride,
                    space.stage_activations[stage], space.stage_se[stage], space,
                ))
                channels = out
        self.blocks = nn.ModuleList(blocks)
        self.final_expand = ElasticConvBNAct(
            ElasticConv2d(channels, space.final_expand_channels), space.final_expand_channels, "hswish", True, *bn
        )
        self.feature_mix = ElasticConvBNAct(
            ElasticConv2d(space.final_expand_channels, space.feature_mix_channels),
            space.feature_mix_channels, "hswish", False, *bn,
        )
        self.classifier = ElasticLinear(space.feature_mix_channels, space.num_classes)
        self.active_arch = space.max()

    def set_active(self, arch: Arch) -> None:
        self.active_arch = self.space.validate(arch)

    def forward(self, x: Tensor, arch: Arch | None = None) -> Tensor:
        """Run ``arch`` (default: the active architecture) on ``x``.

        ``x`` should already have the architecture's resolution; the network itself accepts
        any size.
        """
        if arch is None:
            arch = self.active_arch
        elif arch is not self.active_arch:
            arch = self.space.validate(arch)
        space = self.space
        x = self.stem(x, space.stem_channels)
        x = self.first_block(x, 3, 1)
        for stage, block, kernel, expand in arch.active_blocks():
            x = self.blocks[stage * space.max_depth + block](x, kernel, expand)
        x = self.final_expand(x, space.final_expand_channels)
        x = x.mean((2, 3), keepdim=True)
        x = self.feature_mix(x, space.feature_mix_channels)
        x = F.dropout(torch.flatten(x, 1), space.dropout, self.training)
        return self.classifier(x)

    def active_state_dict(self, arch: Arch) -> dict[str, Tensor]:
        """The active slices of every weight and statistic, named as in the static model."""
        space = self.space
        specs = space.layers(arch)
        stem, first, *block_specs = specs[:-4]
        final_spec, _pool, mix_spec, linear_spec = specs[-4:]
        modules = [self.blocks[space.slot_index(s, b)] for s, b, _, _ in arch.active_blocks()]
        state = _prefixed("0", self.stem.active_state(
            self.stem.conv.active_state(stem.in_channels, stem.out_channels), stem.out_channels))
        state.update(_prefixed("1", self.first_block.active_state(first)))
        for index, (module, spec) in enumerate(zip(modules, block_specs, strict=True), start=2):
            state.update(_prefixed(str(index), module.active_state(spec)))
        index = 2 + len(block_specs)
        for offset, module, spec in ((0, self.final_expand, final_spec), (2, self.feature_mix, mix_spec)):
            conv = module.conv.active_state(spec.in_channels, spec.out_channels)
            state.update(_prefixed(str(index + offset), module.active_state(conv, spec.out_channels)))
        linear = self.classifier.active_state(linear_spec.in_features, linear_spec.out_features)
        state.update(_prefixed(f"{index + 3}.linear", linear))
        return state

    @torch.no_grad()
    def extract(self, arch: Arch | None = None) -> nn.Sequential:
        """A standalone static model of ``arch`` whose outputs equal the supernet's for it."""
        arch = self.active_arch if arch is None else self.space.validate(arch)
        model = build_static(self.space, arch)
        model.load_state_dict({k: v.detach() for k, v in self.active_state_dict(arch).items()})
        reference = next(self.parameters())
        return model.to(device=reference.device, dtype=reference.dtype).train(self.training)
