"""A MobileNetV3 subnet: resolution, one depth per stage, kernel size and expand ratio per slot.

There are ``max_depth`` block slots per stage, stage-major; genes of the slots a stage's
depth leaves inactive are 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from elasticnas.core.errors import InvalidArchitectureError
from elasticnas.supernet.arch import INACTIVE, Arch, as_numbers


@dataclass(frozen=True)
class MobileNetV3Arch(Arch):
    """One subnet of a MobileNetV3-style space.

    >>> a = MobileNetV3Arch(resolution=224, depths=(2,), kernel_sizes=(3, 5, 7, 7), expand_ratios=(4, 6, 3, 3))
    >>> a.kernel_sizes
    (3, 5, 0, 0)
    >>> MobileNetV3Arch.from_json(a.to_json()) == a
    True
    """

    depths: tuple[int, ...]
    kernel_sizes: tuple[int, ...]
    expand_ratios: tuple[int | float, ...]

    def __post_init__(self) -> None:
        super().__post_init__()
        depths = as_numbers(self.depths, "depths", integers=True)
        kernels = as_numbers(self.kernel_sizes, "kernel_sizes", integers=True)
        ratios = as_numbers(self.expand_ratios, "expand_ratios")
        if not depths:
            raise InvalidArchitectureError("depths must name at least one stage, but got ()")
        if len(kernels) != len(ratios):
            raise InvalidArchitectureError(f"kernel_sizes and expand_ratios need one entry per block slot, "
                                           f"but got {len(kernels)} and {len(ratios)}")
        if len(kernels) % len(depths):
            raise InvalidArchitectureError(f"{len(kernels)} block slots cannot be split evenly over "
                                           f"{len(depths)} stages")
        per_stage = len(kernels) // len(depths)
        for stage, depth in enumerate(depths):
            if not 0 <= depth <= per_stage:
                raise InvalidArchitectureError(f"depths[{stage}]={depth} is outside 0..{per_stage} "
                                               f"(the slots per stage)")
        keep = {s * per_stage + b for s, d in enumerate(depths) for b in range(d)}
        object.__setattr__(self, "depths", depths)
        object.__setattr__(self, "kernel_sizes", tuple(k if i in keep else INACTIVE for i, k in enumerate(kernels)))
        object.__setattr__(self, "expand_ratios", tuple(e if i in keep else INACTIVE for i, e in enumerate(ratios)))

    @property
    def num_stages(self) -> int:
        return len(self.depths)

    @property
    def slots_per_stage(self) -> int:
        return len(self.kernel_sizes) // len(self.depths)

    def active_blocks(self) -> list[tuple[int, int, int, int | float]]:
        """``(stage, block, kernel_size, expand_ratio)`` of every active block, in order."""
        per = self.slots_per_stage
        return [(s, b, self.kernel_sizes[s * per + b], self.expand_ratios[s * per + b])
                for s, depth in enumerate(self.depths) for b in range(depth)]

    def to_dict(self, style: str = "native") -> dict[str, Any]:
        """``style="native"``: elasticnas' own form. ``style="ofa"``: the dict Once-for-All and
        DyNAS-T use (``ks``, ``e``, ``d``, ``r``); inactive slots repeat their stage's last active gene."""
        if style == "native":
            return super().to_dict()
        if style == "ofa":
            return {"ks": _fill_inactive(self.kernel_sizes, self.depths), "e": _fill_inactive(self.expand_ratios,
                    self.depths), "d": list(self.depths), "r": [self.resolution]}
        raise InvalidArchitectureError(f"unknown dict style {style!r}; choose 'native' or 'ofa'")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, default_resolution: int | None = None) -> MobileNetV3Arch:
        """Read the native form or the Once-for-All/DyNAS-T form (``ks``/``e``/``d``/``r``/``wid``)."""
        if isinstance(data, Mapping) and {"ks", "e", "d"} <= set(data):
            return cls._from_ofa_dict(data, default_resolution)
        return super().from_dict(data, default_resolution=default_resolution)

    @classmethod
    def _from_ofa_dict(cls, data: Mapping[str, Any], default_resolution: int | None) -> MobileNetV3Arch:
        unknown = set(data) - {"ks", "e", "d", "r", "wid"}
        if unknown:
            raise InvalidArchitectureError(f"unknown Once-for-All architecture keys {sorted(unknown)}; "
                                           f"allowed: ['d', 'e', 'ks', 'r', 'wid']")
        if data.get("wid") is not None:
            raise InvalidArchitectureError(f"'wid'={data['wid']!r}: elastic width is not part of this space; "
                                           f"only wid=None is accepted")
        resolution = data.get("r", default_resolution)
        if isinstance(resolution, (list, tuple)):
            if len(resolution) != 1:
                raise InvalidArchitectureError(f"'r' must be one resolution, but got {list(resolution)}")
            resolution = resolution[0]
        if resolution is None:
            raise InvalidArchitectureError("Once-for-All dict has no 'r' (resolution) and no default was given")
        return cls(resolution=resolution, depths=data["d"], kernel_sizes=data["ks"], expand_ratios=data["e"])


def _fill_inactive(genes: tuple, depths: tuple[int, ...]) -> list:
    per = len(genes) // len(depths)
    out = []
    for s, depth in enumerate(depths):
        stage = list(genes[s * per : (s + 1) * per])
        last = stage[depth - 1] if depth else stage[0]
        out.extend(g if b < depth else last for b, g in enumerate(stage))
    return out
