"""Architectures as data: immutable, hashable, canonical, JSON round-tripping.

An :class:`Arch` of the MobileNetV3 family is an input resolution, one depth per stage,
and one kernel size and one expand ratio per block slot (``max_depth`` slots per stage,
stage-major). Genes of the slots that a stage's depth leaves inactive carry no meaning, so
they are normalised to ``0`` when the object is built: two architectures with the same
active network are *the same value* (equal, same hash, same JSON). Deduplicating on
genotypes that still differ in dead genes is how DyNAS-T re-measured identical subnets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from elasticnas.supernet.errors import InvalidArchitectureError

INACTIVE = 0  # gene value of a block slot that the stage depth switches off


def _as_number(value: Any, field: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArchitectureError(f"{field} must hold numbers, but got {value!r}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _as_int(value: Any, field: str) -> int:
    number = _as_number(value, field)
    if not isinstance(number, int):
        raise InvalidArchitectureError(f"{field} must hold integers, but got {value!r}")
    return number


@dataclass(frozen=True)
class Arch:
    """One subnet of a MobileNetV3-style space.

    >>> a = Arch(resolution=224, depths=(2,), kernel_sizes=(3, 5, 7, 7), expand_ratios=(4, 6, 3, 3))
    >>> a.kernel_sizes
    (3, 5, 0, 0)
    >>> Arch.from_json(a.to_json()) == a
    True
    """

    resolution: int
    depths: tuple[int, ...]
    kernel_sizes: tuple[int, ...]
    expand_ratios: tuple[int | float, ...]

    def __post_init__(self) -> None:
        resolution = _as_int(self.resolution, "resolution")
        depths = tuple(_as_int(d, "depths") for d in _as_sequence(self.depths, "depths"))
        kernels = tuple(_as_int(k, "kernel_sizes") for k in _as_sequence(self.kernel_sizes, "kernel_sizes"))
        ratios = tuple(_as_number(e, "expand_ratios") for e in _as_sequence(self.expand_ratios, "expand_ratios"))
        if not depths:
            raise InvalidArchitectureError("depths must name at least one stage, but got ()")
        if len(kernels) != len(ratios):
            raise InvalidArchitectureError(
                f"kernel_sizes and expand_ratios need one entry per block slot, "
                f"but got {len(kernels)} and {len(ratios)}"
            )
        if len(kernels) % len(depths):
            raise InvalidArchitectureError(
                f"{len(kernels)} block slots cannot be split evenly over {len(depths)} stages"
            )
        per_stage = len(kernels) // len(depths)
        for stage, depth in enumerate(depths):
            if not 0 <= depth <= per_stage:
                raise InvalidArchitectureError(
                    f"depths[{stage}]={depth} is outside 0..{per_stage} (the slots per stage)"
                )
        active = [s * per_stage + b for s, d in enumerate(depths) for b in range(d)]
        keep = set(active)
        kernels = tuple(k if i in keep else INACTIVE for i, k in enumerate(kernels))
        ratios = tuple(e if i in keep else INACTIVE for i, e in enumerate(ratios))
        object.__setattr__(self, "resolution", resolution)
        object.__setattr__(self, "depths", depths)
        object.__setattr__(self, "kernel_sizes", kernels)
        object.__setattr__(self, "expand_ratios", ratios)

    @property
    def num_stages(self) -> int:
        return len(self.depths)

    @property
    def slots_per_stage(self) -> int:
        return len(self.kernel_sizes) // len(self.depths)

    def active_blocks(self) -> list[tuple[int, int, int, int | float]]:
        """``(stage, block, kernel_size, expand_ratio)`` of every active block, in order."""
        per = self.slots_per_stage
        return [
            (s, b, self.kernel_sizes[s * per + b], self.expand_ratios[s * per + b])
            for s, depth in enumerate(self.depths)
            for b in range(depth)
        ]

    def to_dict(self, style: str = "native") -> dict[str, Any]:
        """Plain JSON-ready dict.

        ``style="native"`` is elasticnas' own form. ``style="ofa"`` is the dict that
        Once-for-All and DyNAS-T use (``ks``, ``e``, ``d``, ``r``); since they expect a value
        in every slot, inactive slots repeat the last active gene of their stage.
        """
        if style == "native":
            return {
                "resolution": self.resolution,
                "depths": list(self.depths),
                "kernel_sizes": list(self.kernel_sizes),
                "expand_ratios": list(self.expand_ratios),
            }
        if style == "ofa":
            return {
                "ks": _fill_inactive(self.kernel_sizes, self.depths),
                "e": _fill_inactive(self.expand_ratios, self.depths),
                "d": list(self.depths),
                "r": [self.resolution],
            }
        raise InvalidArchitectureError(f"unknown dict style {style!r}; choose 'native' or 'ofa'")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, default_resolution: int | None = None) -> Arch:
        """Read the native form or the Once-for-All/DyNAS-T form (``ks``/``e``/``d``/``r``/``wid``)."""
        if not isinstance(data, Mapping):
            raise InvalidArchitectureError(f"an architecture must be a dict, but got {type(data).__name__}")
        keys = set(data)
        if {"ks", "e", "d"} <= keys:
            return cls._from_ofa_dict(data, default_resolution)
        native = {"resolution", "depths", "kernel_sizes", "expand_ratios"}
        missing = native - keys
        if missing and not (missing == {"resolution"} and default_resolution is not None):
            raise InvalidArchitectureError(
                f"architecture dict lacks {sorted(missing)}; give the native keys {sorted(native)} "
                f"or the Once-for-All keys ['d', 'e', 'ks', 'r']"
            )
        unknown = keys - native
        if unknown:
            raise InvalidArchitectureError(f"unknown architecture keys {sorted(unknown)}; allowed: {sorted(native)}")
        return cls(
            resolution=data.get("resolution", default_resolution),
            depths=data["depths"],
            kernel_sizes=data["kernel_sizes"],
            expand_ratios=data["expand_ratios"],
        )

    @classmethod
    def _from_ofa_dict(cls, data: Mapping[str, Any], default_resolution: int | None) -> Arch:
        unknown = set(data) - {"ks", "e", "d", "r", "wid"}
        if unknown:
            raise InvalidArchitectureError(
                f"unknown Once-for-All architecture keys {sorted(unknown)}; allowed: ['d', 'e', 'ks', 'r', 'wid']"
            )
        if data.get("wid") is not None:
            raise InvalidArchitectureError(
                f"'wid'={data['wid']!r}: elastic width is not part of this space; only wid=None is accepted"
            )
        resolution = data.get("r", default_resolution)
        if isinstance(resolution, (list, tuple)):
            if len(resolution) != 1:
                raise InvalidArchitectureError(f"'r' must be one resolution, but got {list(resolution)}")
            resolution = resolution[0]
        if resolution is None:
            raise InvalidArchitectureError("Once-for-All dict has no 'r' (resolution) and no default was given")
        return cls(resolution=resolution, depths=data["d"], kernel_sizes=data["ks"], expand_ratios=data["e"])

    @classmethod
    def from_json(cls, text: str, **kwargs: Any) -> Arch:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidArchitectureError(f"architecture JSON does not parse: {exc}") from None
        return cls.from_dict(data, **kwargs)


def _as_sequence(value: Any, field: str) -> Sequence[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InvalidArchitectureError(f"{field} must be a list of numbers, but got {value!r}")
    return value


def _fill_inactive(genes: tuple, depths: tuple[int, ...]) -> list:
    per = len(genes) // len(depths)
    out = []
    for s, depth in enumerate(depths):
        stage = list(genes[s * per : (s + 1) * per])
        last = stage[depth - 1] if depth else stage[0]
        out.extend(g if b < depth else last for b, g in enumerate(stage))
    return out
