"""The ResNet search space (Once-for-All's ResNet50D design): depth, expand ratio and width.

Layers: a deep stem (3x3 conv with the stem stride; a residual 3x3 conv that the stem depth
can skip; a 3x3 conv to the stem width), optional 3x3/2 max pooling, bottleneck stages, global
pooling and the classifier. Unlike MobileNetV3, choices couple layers: a stage's width is the
input width of the next stage's first block, and the stem's width that of the first stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from elasticnas.core.errors import ConfigError, InvalidArchitectureError
from elasticnas.supernet.families.resnet.arch import ResNetArch
from elasticnas.supernet.families.resnet.blocks import BottleneckSpec, ResidualConvSpec
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
from elasticnas.supernet.specs import (
    ConvSpec,
    LinearSpec,
    MaxPoolSpec,
    PoolSpec,
    conv_output_size,
    make_divisible,
    middle_channels,
)


@dataclass(frozen=True)
class ResNetSpace(SearchSpace):
    """Skeleton and choices of an elastic ResNet with bottleneck blocks."""

    arch_type: ClassVar[type] = ResNetArch
    shrink_order: ClassVar[tuple[str, ...]] = ("depth", "expand", "width")

    name: str
    num_classes: int
    in_channels: int
    stem_channels: int  # stem output width at width multiplier 1 (its inner convs have half)
    stage_channels: tuple[int, ...]  # block output width of each stage at width multiplier 1
    base_depths: tuple[int, ...]  # blocks every subnet keeps in each stage
    stage_strides: tuple[int, ...]
    resolutions: tuple[int, ...]
    depth_choices: tuple[int, ...]  # extra blocks per stage
    expand_choices: tuple[float, ...]
    width_choices: tuple[float, ...]
    stem_stride: int = 2
    max_pool: bool = True  # 3x3 max pooling with stride 2 after the stem
    kernel_size: int = 3  # of each bottleneck's middle conv
    dropout: float = 0.0  # before the classifier, in training only
    channel_divisor: int = 8
    bn_momentum: float = 0.1
    bn_eps: float = 1e-5
    family: str = "resnet"

    def __post_init__(self) -> None:
        normalise_fields(self)
        sorted_choices(self, "resolutions", "depth_choices", "expand_choices", "width_choices")
        check_per_stage(self, len(self.stage_channels), "base_depths", "stage_strides")
        if min(self.depth_choices) < 0 or min(self.base_depths) < 1:
            raise ConfigError(f"depth_choices must be >= 0 and base_depths >= 1, but got {list(self.depth_choices)} "
                              f"and {list(self.base_depths)}")
        check_classes_and_channels(self)
        for base in (self.stem_channels, *self.stage_channels):
            widths = [self.width(base, w) for w in self.width_choices]
            if len(set(widths)) != len(widths):
                raise ConfigError(f"width_choices {list(self.width_choices)} give duplicate widths {widths} for "
                                  f"base width {base} (divisor {self.channel_divisor}); two genes would name the "
                                  f"same network")
            if base != self.stem_channels:  # only stages have bottlenecks
                check_distinct_middles(self.expand_choices, widths, self.channel_divisor)

    # ----- shape of the space -------------------------------------------------------
    @property
    def num_stages(self) -> int:
        return len(self.stage_channels)

    @property
    def slots_per_stage(self) -> tuple[int, ...]:
        return tuple(base + max(self.depth_choices) for base in self.base_depths)

    @property
    def num_slots(self) -> int:
        return sum(self.slots_per_stage)

    def stage_slots(self, stage: int) -> range:
        start = sum(self.slots_per_stage[:stage])
        return range(start, start + self.slots_per_stage[stage])

    def width(self, base: int, mult: float) -> int:
        return make_divisible(base * mult, self.channel_divisor)

    def stem_inner(self, mult: float) -> int:
        return make_divisible(self.width(self.stem_channels, mult) // 2, self.channel_divisor)

    @property
    def stem_inner_choices(self) -> tuple[float, ...]:
        """Width multipliers of the stem's inner convs that give distinct widths (the smallest of each).

        Once-for-All's ResNet50D rounds 0.65 and 0.8 to the same 24 inner channels: two genotypes,
        one network. The canonical form keeps 0.65 and reads 0.8 as 0.65.
        """
        by_width: dict[int, float] = {}
        for mult in self.width_choices:
            by_width.setdefault(self.stem_inner(mult), mult)
        return tuple(by_width.values())

    def canonical_stem_mult(self, mult: float) -> float:
        for choice in self.stem_inner_choices:
            if mult in self.width_choices and self.stem_inner(choice) == self.stem_inner(mult):
                return choice
        return mult

    def active_blocks(self, arch: ResNetArch) -> list[tuple[int, int]]:
        """``(stage, slot)`` of every block the architecture runs, in order."""
        return [(s, self.stage_slots(s)[b]) for s in range(self.num_stages)
                for b in range(self.base_depths[s] + arch.depths[s])]

    # ----- dict forms ---------------------------------------------------------------
    def arch_from_dict(self, data: Mapping[str, Any]) -> ResNetArch:
        """The native form, or Once-for-All's (``d``: stem then extra blocks per stage, ``e`` per block,
        ``w`` per width position as indices into the width choices, optional ``r``)."""
        if not isinstance(data, Mapping) or not {"d", "e", "w"} <= set(data):
            arch = ResNetArch.from_dict(data, default_resolution=max(self.resolutions))
            mults = arch.width_mults
            return replace(arch, width_mults=(self.canonical_stem_mult(mults[0]), *mults[1:]) if mults else mults)
        unknown = set(data) - {"d", "e", "w", "r"}
        if unknown:
            raise InvalidArchitectureError(f"unknown Once-for-All architecture keys {sorted(unknown)}; "
                                           f"allowed: ['d', 'e', 'r', 'w']")
        d, w = list(data["d"]), list(data["w"])
        if len(d) != self.num_stages + 1 or len(w) != self.num_stages + 2:
            raise InvalidArchitectureError(f"Once-for-All ResNet dicts have {self.num_stages + 1} 'd' entries and "
                                           f"{self.num_stages + 2} 'w' indices, but got {len(d)} and {len(w)}")
        bad = [i for i in w if not isinstance(i, int) or not 0 <= i < len(self.width_choices)]
        if bad:
            raise InvalidArchitectureError(f"'w' holds indices into the width choices {list(self.width_choices)}, "
                                           f"so 0..{len(self.width_choices) - 1}, but got {bad[0]!r}")
        resolution = data.get("r", max(self.resolutions))
        resolution = resolution[0] if isinstance(resolution, (list, tuple)) and len(resolution) == 1 else resolution
        mults = [self.width_choices[i] for i in w]
        # Once-for-All runs the stem's residual conv only at the largest depth choice
        return ResNetArch(resolution, int(d[0] == max(self.depth_choices)), tuple(d[1:]), tuple(data["e"]),
                          (self.canonical_stem_mult(mults[0]), *mults[1:]))

    def to_foreign_dict(self, arch: ResNetArch) -> dict[str, Any]:
        arch = self.canonical(arch)
        expands = list(arch.expand_ratios)
        for stage in range(self.num_stages):  # Once-for-All wants a value in every slot
            slots = list(self.stage_slots(stage))
            last = self.base_depths[stage] + arch.depths[stage] - 1
            for slot in slots[last + 1 :]:
                expands[slot] = expands[slots[last]]
        return {"d": [max(self.depth_choices) if arch.stem_depth else min(self.depth_choices), *arch.depths],
                "e": expands, "w": [self.width_choices.index(m) for m in arch.width_mults], "r": [arch.resolution]}

    # ----- the seam -----------------------------------------------------------------
    def _declare_genes(self) -> tuple[Gene, ...]:
        s = self.num_stages
        genes = [Gene("resolution", None, "resolution", self.resolutions),
                 Gene("stem_depth", None, "depth", (0, 1))]
        genes += [Gene("depths", i, "depth", self.depth_choices) for i in range(s)]
        for stage in range(s):
            for b, slot in enumerate(self.stage_slots(stage)):
                extra = b - self.base_depths[stage] + 1  # the stage depth this block needs
                genes.append(Gene("expand_ratios", slot, "expand", self.expand_choices,
                                  active_if=(2 + stage, extra) if extra > 0 else None))
        genes.append(Gene("width_mults", 0, "width", self.stem_inner_choices))
        genes += [Gene("width_mults", i, "width", self.width_choices) for i in range(1, s + 2)]
        return tuple(genes)

    def _columns(self) -> tuple[int, int, int]:
        """First column of the depths, the expand ratios and the width multipliers."""
        return 2, 2 + self.num_stages, 2 + self.num_stages + self.num_slots

    def _resolutions(self, resolution: int) -> list[int]:
        """Input resolution of the stem's inner convs, of the pooling, then of each stage, then the last."""
        res = conv_output_size(resolution, 3, self.stem_stride)
        out = [res, res]
        if self.max_pool:
            res = conv_output_size(res, 3, 2)
        out.append(res)
        for stride in self.stage_strides:
            res = conv_output_size(res, 3, stride)
            out.append(res)
        return out

    def _declare_layers(self) -> tuple[LayerSlot, ...]:
        _, expand0, width0 = self._columns()
        slots = [
            LayerSlot((0, width0), lambda r, w: ConvSpec(self.in_channels, self.stem_inner(w), 3, self.stem_stride, r,
                                                         "relu")),
            LayerSlot((0, 1, width0), lambda r, d, w: ResidualConvSpec(
                self.stem_inner(w), self.stem_inner(w), 3, 1, self._resolutions(r)[0], "relu") if d else None),
            LayerSlot((0, width0, width0 + 1), lambda r, w, w_out: ConvSpec(
                self.stem_inner(w), self.width(self.stem_channels, w_out), 3, 1, self._resolutions(r)[0], "relu")),
        ]
        if self.max_pool:
            slots.append(LayerSlot((0, width0 + 1), lambda r, w: MaxPoolSpec(
                self.width(self.stem_channels, w), 3, 2, self._resolutions(r)[1])))
        for stage in range(self.num_stages):
            for b, slot in enumerate(self.stage_slots(stage)):
                genes = (0, *((2 + stage,) if b >= self.base_depths[stage] else ()), expand0 + slot,
                         width0 + 2 + stage, *((width0 + 1 + stage,) if b == 0 else ()))
                slots.append(LayerSlot(genes, self._block_builder(stage, b)))
        last = width0 + 1 + self.num_stages
        slots += [
            LayerSlot((0, last), lambda r, w: PoolSpec(self.width(self.stage_channels[-1], w),
                                                       self._resolutions(r)[-1])),
            LayerSlot((last,), lambda w: LinearSpec(self.width(self.stage_channels[-1], w), self.num_classes,
                                                    self.dropout)),
        ]
        return tuple(slots)

    def _block_builder(self, stage: int, b: int):
        optional, first = b >= self.base_depths[stage], b == 0
        previous = self.stage_channels[stage - 1] if stage else self.stem_channels

        def build(r, *values):
            values = list(values)
            if optional and values.pop(0) < b - self.base_depths[stage] + 1:
                return None
            expand, w = values[0], values[1]
            out = self.width(self.stage_channels[stage], w)
            in_c = self.width(previous, values[2]) if first else out
            res = self._resolutions(r)[2 + stage if first else 3 + stage]
            stride = self.stage_strides[stage] if first else 1
            # Once-for-All keeps an identity shortcut where the input and output width lists are equal
            downsample = first and (stride != 1 or previous != self.stage_channels[stage])
            return BottleneckSpec(in_c, middle_channels(out, expand, self.channel_divisor), out, self.kernel_size,
                                  stride, res, downsample=downsample)

        return build
