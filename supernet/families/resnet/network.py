"""The elastic ResNet supernet: every layer is driven by its spec from ``space.layers(arch)``."""

from __future__ import annotations

import torch  # noqa: F401  (the doctest uses it)
import torch.nn.functional as F
from torch import Tensor, nn

from elasticnas.supernet.families.resnet.arch import ResNetArch
from elasticnas.supernet.families.resnet.blocks import ElasticBottleneck, ElasticConvLayer
from elasticnas.supernet.families.resnet.space import ResNetSpace
from elasticnas.supernet.layers import ElasticClassifier, ElasticConv2d
from elasticnas.supernet.module import SpecDrivenSupernet
from elasticnas.supernet.specs import MaxPoolSpec, middle_channels


class _Pooling(nn.Module):
    """Max pooling (a ``MaxPoolSpec``) or global average pooling (a ``PoolSpec``): no weights."""

    def run(self, x: Tensor, spec) -> Tensor:
        if isinstance(spec, MaxPoolSpec):
            return F.max_pool2d(x, spec.kernel_size, spec.stride, spec.kernel_size // 2)
        return x.mean((2, 3), keepdim=True)

    def spec_state(self, spec) -> dict[str, Tensor]:
        return {}


class ResNetSupernet(SpecDrivenSupernet):
    """Elastic ResNet over a :class:`ResNetSpace` (Once-for-All's OFAResNets, without hidden state).

    >>> from elasticnas.supernet import create_supernet
    >>> net = create_supernet("tiny_resnet", num_classes=10, in_channels=1)
    >>> arch = net.space.sample(0)
    >>> net.eval()(torch.zeros(2, 1, arch.resolution, arch.resolution), arch).shape
    torch.Size([2, 10])
    """

    input_weight = "stem_in.conv.weight"
    output_layer = "classifier"

    def __init__(self, space: ResNetSpace):
        super().__init__(space)
        bn = (space.bn_momentum, space.bn_eps)
        inner = space.stem_inner(max(space.width_choices))
        stem_out = space.width(space.stem_channels, max(space.width_choices))
        self.stem_in = ElasticConvLayer(ElasticConv2d(space.in_channels, inner, 3, space.stem_stride), inner, "relu",
                                        True, *bn)
        self.stem_residual = ElasticConvLayer(ElasticConv2d(inner, inner, 3), inner, "relu", True, *bn)
        self.stem_out = ElasticConvLayer(ElasticConv2d(inner, stem_out, 3), stem_out, "relu", True, *bn)
        self.max_pool = _Pooling()
        blocks, channels = [], stem_out
        for stage, base in enumerate(space.stage_channels):
            out = space.width(base, max(space.width_choices))
            mid = middle_channels(out, max(space.expand_choices), space.channel_divisor)
            for b in range(space.slots_per_stage[stage]):
                stride = space.stage_strides[stage] if b == 0 else 1
                previous = space.stage_channels[stage - 1] if stage else space.stem_channels
                downsample = b == 0 and (stride != 1 or previous != base)
                blocks.append(ElasticBottleneck(channels, mid, out, stride, downsample, *bn))
                channels = out
        self.blocks = nn.ModuleList(blocks)
        self.pool = _Pooling()
        self.classifier = ElasticClassifier(channels, space.num_classes)

    def _modules_of(self, arch: ResNetArch) -> list[nn.Module]:
        """The module running each of ``space.layers(arch)``, in the same order."""
        modules = [self.stem_in, *([self.stem_residual] if arch.stem_depth else []), self.stem_out]
        if self.space.max_pool:
            modules.append(self.max_pool)
        modules += [self.blocks[slot] for _, slot in self.space.active_blocks(arch)]
        return [*modules, self.pool, self.classifier]
