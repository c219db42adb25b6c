"""The elastic MobileNetV3 supernet (Once-for-All's design, without hidden state)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from elasticnas.supernet.families.mobilenetv3.arch import MobileNetV3Arch
from elasticnas.supernet.families.mobilenetv3.blocks import ElasticMBConv
from elasticnas.supernet.families.mobilenetv3.space import MobileNetV3Space
from elasticnas.supernet.layers import ElasticConv2d, ElasticConvBNAct, ElasticLinear
from elasticnas.supernet.module import Supernet, prefixed
from elasticnas.supernet.regularisation import regularising


class MobileNetV3Supernet(Supernet):
    """Elastic MobileNetV3 over a :class:`MobileNetV3Space`.

    >>> from elasticnas.supernet import create_supernet
    >>> net = create_supernet("tiny_mbv3", num_classes=10, in_channels=1)
    >>> arch = net.space.sample(0)
    >>> net.set_active(arch)
    >>> net.eval()(torch.zeros(2, 1, arch.resolution, arch.resolution)).shape
    torch.Size([2, 10])
    """

    input_weight = "stem.conv.weight"
    output_layer = "classifier"

    def __init__(self, space: MobileNetV3Space):
        super().__init__(space)
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

    def no_weight_decay(self) -> set[str]:
        return {name for name, _ in self.named_parameters() if ".transforms." in name}

    def forward(self, x: Tensor, arch: MobileNetV3Arch | None = None) -> Tensor:
        """Run ``arch`` (default: the active architecture) on ``x``, already at its resolution."""
        arch = self.resolve(arch)
        space = self.space
        x = self.stem(x, space.stem_channels)
        x = self.first_block(x, 3, 1)
        for stage, block, kernel, expand in arch.active_blocks():
            x = self.blocks[stage * space.max_depth + block](x, kernel, expand)
        x = self.final_expand(x, space.final_expand_channels)
        x = x.mean((2, 3), keepdim=True)
        x = self.feature_mix(x, space.feature_mix_channels)
        x = F.dropout(torch.flatten(x, 1), space.dropout, regularising(self))
        return self.classifier(x)

    def active_state_dict(self, arch: MobileNetV3Arch) -> dict[str, Tensor]:
        space = self.space
        specs = space.layers(arch)
        stem, first, *block_specs = specs[:-4]
        final_spec, _pool, mix_spec, linear_spec = specs[-4:]
        modules = [self.blocks[space.slot_index(s, b)] for s, b, _, _ in arch.active_blocks()]
        state = prefixed("0", self.stem.active_state(
            self.stem.conv.active_state(stem.in_channels, stem.out_channels), stem.out_channels))
        state.update(prefixed("1", self.first_block.active_state(first)))
        for index, (module, spec) in enumerate(zip(modules, block_specs, strict=True), start=2):
            state.update(prefixed(str(index), module.active_state(spec)))
        index = 2 + len(block_specs)
        for offset, module, spec in ((0, self.final_expand, final_spec), (2, self.feature_mix, mix_spec)):
            conv = module.conv.active_state(spec.in_channels, spec.out_channels)
            state.update(prefixed(str(index + offset), module.active_state(conv, spec.out_channels)))
        linear = self.classifier.active_state(linear_spec.in_features, linear_spec.out_features)
        state.update(prefixed(f"{index + 3}.linear", linear))
        return state
