"""A ResNet subnet: resolution, stem depth, extra blocks per stage, expand ratio per block, width multipliers.

Block slots are stage-major, ``base_depths[s] + max(depth_choices)`` per stage; the expand
ratios of the slots a stage's depth leaves out are 0. ``width_mults`` holds one multiplier
per width position: the stem's inner convs, the stem's output, then each stage.
"""

from __future__ import annotations

from dataclasses import dataclass

from elasticnas.core.errors import InvalidArchitectureError
from elasticnas.supernet.arch import Arch, as_int, as_numbers


@dataclass(frozen=True)
class ResNetArch(Arch):
    """One subnet of a ResNet space (canonical when built by or checked against its space)."""

    stem_depth: int  # 1: the stem's residual 3x3 conv runs; 0: it is skipped
    depths: tuple[int, ...]  # extra blocks per stage, on top of the space's base depths
    expand_ratios: tuple[int | float, ...]  # bottleneck width / block output width, per block slot
    width_mults: tuple[int | float, ...]  # per width position: stem inner, stem output, each stage

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "stem_depth", as_int(self.stem_depth, "stem_depth"))
        object.__setattr__(self, "depths", as_numbers(self.depths, "depths", integers=True))
        object.__setattr__(self, "expand_ratios", as_numbers(self.expand_ratios, "expand_ratios"))
        object.__setattr__(self, "width_mults", as_numbers(self.width_mults, "width_mults"))
        if len(self.width_mults) != len(self.depths) + 2:
            raise InvalidArchitectureError(f"width_mults needs {len(self.depths) + 2} entries (stem inner, stem "
                                           f"output, one per stage), but got {len(self.width_mults)}")
