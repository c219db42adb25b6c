"""Registries of supernet presets (name -> space factory) and families (family -> module class).

>>> from elasticnas.supernet import create_supernet, list_supernets
>>> "ofa_mbv3_w10" in list_supernets()
True
>>> net = create_supernet("tiny_mbv3", num_classes=10, in_channels=1, resolutions=(28,))
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import fields, replace
from typing import Any

from torch import nn

from elasticnas.supernet.errors import ConfigError, unknown_name

_PRESETS: dict[str, Callable[..., Any]] = {}
_FAMILIES: dict[str, Callable[[Any], nn.Module]] = {}


def register_supernet(name: str) -> Callable:
    """Register a preset: a function ``(num_classes, in_channels) -> space``."""

    def decorate(factory: Callable) -> Callable:
        if name in _PRESETS:
            raise ConfigError(f"supernet preset {name!r} is already registered")
        _PRESETS[name] = factory
        return factory

    return decorate


def register_family(family: str) -> Callable:
    """Register the module class that builds a supernet from a space of ``family``."""

    def decorate(cls: Callable) -> Callable:
        _FAMILIES[family] = cls
        return cls

    return decorate


def list_supernets(pattern: str = "*") -> list[str]:
    """Registered preset names, sorted, optionally filtered by a shell-style pattern."""
    return sorted(name for name in _PRESETS if fnmatch.fnmatch(name, pattern))


def create_space(name: str, *, num_classes: int, in_channels: int = 3, **overrides: Any):
    """The search space of preset ``name``; ``overrides`` replace any field of the space."""
    if name not in _PRESETS:
        raise unknown_name("supernet", name, _PRESETS)
    space = _PRESETS[name](num_classes=num_classes, in_channels=in_channels)
    allowed = {f.name for f in fields(space)} - {"name", "num_classes", "in_channels", "family"}
    unknown = set(overrides) - allowed
    if unknown:
        raise ConfigError(f"unknown override {sorted(unknown)} for {name!r}; allowed: {sorted(allowed)}")
    return replace(space, **overrides) if overrides else space


def build_supernet(space) -> nn.Module:
    """A freshly initialised supernet of ``space`` (its family decides the module class)."""
    if space.family not in _FAMILIES:
        raise unknown_name("supernet family", space.family, _FAMILIES)
    return _FAMILIES[space.family](space)


def create_supernet(name: str, *, num_classes: int, in_channels: int = 3, **overrides: Any) -> nn.Module:
    """A freshly initialised supernet of preset ``name``.

    ``overrides`` replace fields of the preset's space, e.g. ``resolutions=(28, 32)``.
    """
    return build_supernet(create_space(name, num_classes=num_classes, in_channels=in_channels, **overrides))
