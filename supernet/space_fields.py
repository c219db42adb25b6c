"""Checks a family's space runs on its own fields in ``__post_init__`` (YAML lists, choices, precisions)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from typing import Any

from elasticnas.core.errors import ConfigError
from elasticnas.supernet.arch import PRECISIONS
from elasticnas.supernet.specs import middle_channels


def normalise_fields(space: Any) -> None:
    """Lists to tuples in a frozen dataclass (YAML and JSON give lists); checks the precisions."""
    for f in fields(space):
        value = getattr(space, f.name)
        if isinstance(value, list):
            object.__setattr__(space, f.name, tuple(value))
    precisions = space.precisions
    if (not isinstance(precisions, tuple) or not precisions or len(set(precisions)) != len(precisions)
            or not all(type(p) is int and p in PRECISIONS for p in precisions)):
        raise ConfigError(f"precisions must be distinct bit widths among {sorted(PRECISIONS)} "
                          f"({', '.join(f'{b}: {n}' for b, n in sorted(PRECISIONS.items()))}), but got {precisions!r}")
    object.__setattr__(space, "precisions", tuple(sorted(precisions)))


def check_per_stage(space: Any, stages: int, *names: str) -> None:
    """Each named field must hold one entry per stage."""
    for name in names:
        if len(getattr(space, name)) != stages:
            raise ConfigError(f"{name} needs one entry per stage ({stages}), but got {list(getattr(space, name))}")


def check_classes_and_channels(space: Any) -> None:
    if space.num_classes < 1 or space.in_channels < 1:
        raise ConfigError(f"num_classes and in_channels must be >= 1, got {space.num_classes=}, {space.in_channels=}")


def check_distinct_middles(expand_choices: tuple, widths: Iterable[int], divisor: int) -> None:
    """Every expand ratio must give its own middle width for each of ``widths``: else two genes name one network."""
    for width in widths:
        mids = [middle_channels(width, e, divisor) for e in expand_choices]
        if len(set(mids)) != len(mids):
            raise ConfigError(f"expand_choices {list(expand_choices)} give duplicate middle widths {mids} "
                              f"for {width} channels; two genes would name the same network")


def sorted_choices(space: Any, *names: str) -> None:
    """Check that each named field is a non-empty list of distinct values, and sort it."""
    for name in names:
        values = getattr(space, name)
        if not isinstance(values, (list, tuple)) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise ConfigError(f"{name} must be a list of numbers, but got {values!r}")
        if not values or len(set(values)) != len(values):
            raise ConfigError(f"{name} must be a non-empty list of distinct values, but got {list(values)}")
        object.__setattr__(space, name, tuple(sorted(values)))
