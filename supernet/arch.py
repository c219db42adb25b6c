"""Architectures as data: immutable, hashable, canonical, JSON round-tripping.

:class:`Arch` is the base of every family's architecture. A family subclasses it with its
own fields after ``resolution`` (e.g. depths and kernel sizes) and normalises, in
``__post_init__``, every gene that the rest of the architecture switches off to
:data:`INACTIVE`: two architectures with the same active network are then *the same value*
(equal, same hash, same JSON). Deduplicating on genotypes that still differ in dead genes
is how DyNAS-T re-measured identical subnets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from elasticnas.core.errors import InvalidArchitectureError

INACTIVE = 0  # value of a gene that the rest of the architecture switches off
FULL_PRECISION = 32  # bits of a float32 subnet: the precision of every architecture unless a space adds int8
PRECISIONS = {32: "fp32", 8: "int8"}  # bits -> name of the number formats a subnet can be deployed in


def as_number(value: Any, field: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArchitectureError(f"{field} must hold numbers, but got {value!r}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def as_int(value: Any, field: str) -> int:
    number = as_number(value, field)
    if not isinstance(number, int):
        raise InvalidArchitectureError(f"{field} must hold integers, but got {value!r}")
    return number


def as_numbers(value: Any, field: str, *, integers: bool = False) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InvalidArchitectureError(f"{field} must be a list of numbers, but got {value!r}")
    convert = as_int if integers else as_number
    return tuple(convert(v, field) for v in value)


def normalise_layer_stack(arch: Any, width: str, per_layer: dict[str, bool]) -> None:
    """The fields of a layer stack's architecture (``supernet/layer_stack.py``), checked and made
    canonical in place: ``width`` and ``depth`` integers, each ``per_layer`` list (name -> integers
    only) one entry per layer slot, the depth within the slots, and the slots beyond it INACTIVE."""
    width_value, depth = as_int(getattr(arch, width), width), as_int(arch.depth, "depth")
    lists = {name: as_numbers(getattr(arch, name), name, integers=integers) for name, integers in per_layer.items()}
    if len({len(values) for values in lists.values()}) > 1:
        raise InvalidArchitectureError(f"{' and '.join(lists)} need one entry per layer slot, but got "
                                       f"{' and '.join(str(len(values)) for values in lists.values())}")
    slots = len(next(iter(lists.values())))
    if not 0 <= depth <= slots:
        raise InvalidArchitectureError(f"depth={depth} is outside 0..{slots} (the layer slots)")
    object.__setattr__(arch, width, width_value)
    object.__setattr__(arch, "depth", depth)
    for name, values in lists.items():
        object.__setattr__(arch, name, tuple(v if i < depth else INACTIVE for i, v in enumerate(values)))


@dataclass(frozen=True)
class Arch:
    """One subnet: an input resolution plus the family's genes (see the family's subclass).

    ``precision`` is the number format the subnet is deployed in (bits: 32 for float32, 8 for
    int8 after static post-training quantization). It is keyword-only and left out of the
    dict and JSON forms at 32, so float32 architectures read and write as they always did.
    """

    resolution: int
    precision: int = field(default=FULL_PRECISION, kw_only=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "resolution", as_int(self.resolution, "resolution"))
        object.__setattr__(self, "precision", as_int(self.precision, "precision"))
        if self.precision not in PRECISIONS:
            raise InvalidArchitectureError(f"precision={self.precision} is not a known number format; choose one of "
                                           f"{sorted(PRECISIONS)} (bits: {PRECISIONS})")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of the native form (tuples become lists; precision only when not 32)."""
        names = [n for n in self.field_names() if n != "precision" or self.precision != FULL_PRECISION]
        return {name: list(v) if isinstance(v := getattr(self, name), tuple) else v for name in names}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, default_resolution: int | None = None) -> Arch:
        """The native form; ``resolution`` may be left out when ``default_resolution`` is given."""
        if not isinstance(data, Mapping):
            raise InvalidArchitectureError(f"an architecture must be a dict, but got {type(data).__name__}")
        native = set(cls.field_names())
        optional = {f.name for f in fields(cls) if f.default is not MISSING}  # precision, and any field with a default
        missing, unknown = native - set(data) - optional, set(data) - native
        if missing and not (missing == {"resolution"} and default_resolution is not None):
            raise InvalidArchitectureError(f"architecture dict lacks {sorted(missing)}; the keys of a "
                                           f"{cls.__name__} are {sorted(native)}")
        if unknown:
            raise InvalidArchitectureError(f"unknown architecture keys {sorted(unknown)}; allowed: {sorted(native)}")
        values = dict(data)
        values.setdefault("resolution", default_resolution)
        return cls(**values)

    @classmethod
    def from_json(cls, text: str, **kwargs: Any) -> Arch:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidArchitectureError(f"architecture JSON does not parse: {exc}") from None
        return cls.from_dict(data, **kwargs)
