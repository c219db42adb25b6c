"""The MobileNetV3 search space: a fixed skeleton plus named choice dimensions.

The skeleton (widths, strides, activations, squeeze-excite placement, head) is fixed; the
choices are the resolution, the depth of each stage, and the kernel size and expand ratio
of each block slot. A slot's layer depends on its own genes and its stage's depth only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from elasticnas.core.errors import ConfigError
from elasticnas.supernet.families.mobilenetv3.arch import MobileNetV3Arch
from elasticnas.supernet.families.mobilenetv3.blocks import MBConvSpec
from elasticnas.supernet.space import (
    Gene,
    LayerSlot,
    SearchSpace,
    check_classes_and_channels,
    check_distinct_middles,
    check_per_stage,
    normalise_fields,
    sorted_choices,
)
from elasticnas.supernet.specs import ConvSpec, LinearSpec, PoolSpec, conv_output_size, middle_channels, se_channels

ACTIVATIONS = ("relu", "hswish")


@dataclass(frozen=True)
class MobileNetV3Space(SearchSpace):
    """Skeleton and choices of a MobileNetV3-style elastic network.

    Layers, in order: stem conv; one fixed inverted-residual block (expand ratio 1, 3x3);
    ``len(stage_channels)`` elastic stages of up to ``max(depth_choices)`` blocks; a 1x1
    final expansion; global pooling; a 1x1 feature-mix conv (no batch norm); the classifier.
    """

    arch_type: ClassVar[type] = MobileNetV3Arch
    shrink_order: ClassVar[tuple[str, ...]] = ("kernel", "depth", "expand")  # Once-for-All's order

    name: str  # the registry name of the preset this space came from
    num_classes: int
    in_channels: int
    stem_channels: int  # width of the stem conv, which has stride stem_stride
    first_block_channels: int  # width of the fixed first block
    stage_channels: tuple[int, ...]  # output width of each elastic stage
    stage_strides: tuple[int, ...]  # stride of each stage's first block
    stage_activations: tuple[str, ...]  # 'relu' or 'hswish' per stage
    stage_se: tuple[bool, ...]  # squeeze-excite in the blocks of each stage
    final_expand_channels: int
    feature_mix_channels: int
    resolutions: tuple[int, ...]
    depth_choices: tuple[int, ...]
    kernel_choices: tuple[int, ...]
    expand_choices: tuple[int | float, ...]
    stem_stride: int = 2
    stem_activation: str = "hswish"
    first_block_activation: str = "relu"
    first_block_se: bool = False
    dropout: float = 0.1  # before the classifier, in training only
    se_reduction: int = 4
    channel_divisor: int = 8
    bn_momentum: float = 0.1
    bn_eps: float = 1e-5
    family: str = "mobilenetv3"

    def __post_init__(self) -> None:
        normalise_fields(self)
        sorted_choices(self, "resolutions", "depth_choices", "kernel_choices", "expand_choices")
        check_per_stage(self, len(self.stage_channels), "stage_strides", "stage_activations", "stage_se")
        bad = [a for a in (*self.stage_activations, self.stem_activation, self.first_block_activation)
               if a not in ACTIVATIONS]
        if bad:
            raise ConfigError(f"unknown activation {bad[0]!r}; choose one of {list(ACTIVATIONS)}")
        if min(self.depth_choices) < 1:
            raise ConfigError(f"depth_choices must be >= 1, but got {list(self.depth_choices)}")
        if any(k % 2 == 0 or k < 1 for k in self.kernel_choices):
            raise ConfigError(f"kernel_choices must be odd, but got {list(self.kernel_choices)}")
        check_classes_and_channels(self)
        check_distinct_middles(self.expand_choices, sorted({self.first_block_channels, *self.stage_channels}),
                               self.channel_divisor)

    # ----- shape of the space -------------------------------------------------------
    @property
    def num_stages(self) -> int:
        return len(self.stage_channels)

    @property
    def max_depth(self) -> int:
        return max(self.depth_choices)

    @property
    def num_slots(self) -> int:
        return self.num_stages * self.max_depth

    def slot_index(self, stage: int, block: int) -> int:
        return stage * self.max_depth + block

    def to_foreign_dict(self, arch: MobileNetV3Arch) -> dict:
        return self.validate(arch).to_dict("ofa")

    # ----- the seam -----------------------------------------------------------------
    def _declare_genes(self) -> tuple[Gene, ...]:
        s, n = self.num_stages, self.num_slots
        genes = [Gene("resolution", None, "resolution", self.resolutions)]
        genes += [Gene("depths", i, "depth", self.depth_choices) for i in range(s)]
        for field, dimension, choices in (("kernel_sizes", "kernel", self.kernel_choices),
                                          ("expand_ratios", "expand", self.expand_choices)):
            genes += [Gene(field, j, dimension, choices, active_if=(1 + j // self.max_depth, j % self.max_depth + 1))
                      for j in range(n)]
        return tuple(genes)

    def _stage_resolutions(self, resolution: int) -> list[int]:
        """Input resolution of the first block and of each stage, for an input of ``resolution``."""
        res = conv_output_size(resolution, 3, self.stem_stride)
        out = [res]
        for stride in self.stage_strides:
            res = conv_output_size(res, 3, stride)
            out.append(res)
        return out

    def _declare_layers(self) -> tuple[LayerSlot, ...]:
        s, n = self.num_stages, self.num_slots
        last_res = lambda r: self._stage_resolutions(r)[-1]  # noqa: E731
        slots = [LayerSlot((0,), lambda r: ConvSpec(self.in_channels, self.stem_channels, 3, self.stem_stride, r,
                                                    self.stem_activation)),
                 LayerSlot((0,), self._first_block)]
        for j in range(n):
            stage, block = divmod(j, self.max_depth)
            slots.append(LayerSlot((0, 1 + stage, 1 + s + j, 1 + s + n + j),
                                   lambda r, d, k, e, stage=stage, block=block: self._block(stage, block, r, d, k, e)))
        channels = self.final_expand_channels
        slots += [
            LayerSlot((0,), lambda r: ConvSpec(self.stage_channels[-1], channels, 1, 1, last_res(r), "hswish")),
            LayerSlot((0,), lambda r: PoolSpec(channels, last_res(r))),
            LayerSlot((), lambda: ConvSpec(channels, self.feature_mix_channels, 1, 1, 1, "hswish", batch_norm=False)),
            LayerSlot((), lambda: LinearSpec(self.feature_mix_channels, self.num_classes, self.dropout)),
        ]
        return tuple(slots)

    def _first_block(self, resolution: int) -> MBConvSpec:
        channels = self.stem_channels
        se = se_channels(channels, self.se_reduction, self.channel_divisor) if self.first_block_se else 0
        return MBConvSpec(channels, channels, self.first_block_channels, 3, 1, self._stage_resolutions(resolution)[0],
                          self.first_block_activation, se, expand=False,
                          residual=channels == self.first_block_channels)

    def _block(self, stage: int, block: int, resolution: int, depth: int, kernel: int,
               expand: float) -> MBConvSpec | None:
        if block >= depth:
            return None
        in_c = self.stage_channels[stage - 1] if stage else self.first_block_channels
        in_c = in_c if block == 0 else self.stage_channels[stage]
        out = self.stage_channels[stage]
        stride = self.stage_strides[stage] if block == 0 else 1
        res = self._stage_resolutions(resolution)[stage if block == 0 else stage + 1]
        mid = middle_channels(in_c, expand, self.channel_divisor)
        se = se_channels(mid, self.se_reduction, self.channel_divisor) if self.stage_se[stage] else 0
        return MBConvSpec(in_c, mid, out, kernel, stride, res, self.stage_activations[stage], se, expand=True,
                          residual=stride == 1 and in_c == out)
