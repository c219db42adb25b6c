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
from dataclasses import dataclass, fields
from typing import Any

from elasticnas.core.errors import InvalidArchitectureError

INACTIVE = 0  # value of a gene that the rest of the architecture switches off


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


@dataclass(frozen=True)
class Arch:
    """One subnet: an input resolution plus the family's genes (see the family's subclass)."""

    resolution: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "resolution", as_int(self.resolution, "resolution"))

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of the native form (tuples become lists)."""
        return {name: list(v) if isinstance(v := getattr(self, name), tuple) else v for name in self.field_names()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, default_resolution: int | None = None) -> Arch:
        """The native form; ``resolution`` may be left out when ``default_resolution`` is given."""
        if not isinstance(data, Mapping):
            raise InvalidArchitectureError(f"an architecture must be a dict, but got {type(data).__name__}")
        native = set(cls.field_names())
        missing, unknown = native - set(data), set(data) - native
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
