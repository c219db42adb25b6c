"""The catalogue of supernets: presets (name -> space factory) and families (family -> space and module classes).

>>> from elasticnas.supernet import create_supernet, list_supernets
>>> "ofa_mbv3_w10" in list_supernets()
True
>>> net = create_supernet("tiny_mbv3", num_classes=10, in_channels=1, resolutions=(28,))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from torch import nn

from elasticnas.core.errors import ConfigError
from elasticnas.core.registry import Registry


@dataclass(frozen=True)
class Family:
    space: type  # a SearchSpace subclass
    supernet: Callable[[Any], nn.Module]  # space -> freshly initialised supernet


SUPERNETS: Registry[Callable[..., Any]] = Registry("supernet")
FAMILIES: Registry[Family] = Registry("supernet family")


def register_supernet(name: str) -> Callable:
    """Register a preset: a function ``(num_classes, in_channels) -> space``."""
    return SUPERNETS.register(name)


def register_family(family: str, *, space: type, supernet: Callable[[Any], nn.Module]) -> Family:
    """Register a family: its space class and the module class that builds a supernet from a space."""
    return FAMILIES.register(family, Family(space, supernet))


def list_supernets(pattern: str = "*") -> list[str]:
    """Registered preset names, sorted, optionally filtered by a shell-style pattern."""
    return SUPERNETS.names(pattern)


def list_families() -> list[str]:
    return FAMILIES.names()


def create_space(name: str, *, num_classes: int, in_channels: int = 3, **overrides: Any):
    """The search space of preset ``name``; ``overrides`` replace any field of the space."""
    space = SUPERNETS.get(name)(num_classes=num_classes, in_channels=in_channels)
    allowed = {f.name for f in fields(space)} - {"name", "num_classes", "in_channels", "family"}
    unknown = set(overrides) - allowed
    if unknown:
        raise ConfigError(f"unknown override {sorted(unknown)} for {name!r}; allowed: {sorted(allowed)}")
    if not overrides:
        return space
    try:
        return replace(space, **overrides)
    except (TypeError, ValueError) as error:  # a value of the wrong shape deep in a family's checks
        raise ConfigError(f"overrides {overrides} do not make a {name!r} space: {error}") from None


def space_from_config(data: Mapping[str, Any]):
    """A space saved with ``space.to_config()``, rebuilt by the class of its recorded family."""
    if not isinstance(data, Mapping) or "family" not in data:
        raise ConfigError(f"a saved space must be a dict with a 'family'; known families: {list_families()}")
    return FAMILIES.get(data["family"]).space.from_config(data)


def build_supernet(space) -> nn.Module:
    """A freshly initialised supernet of ``space`` (its family decides the module class)."""
    return FAMILIES.get(space.family).supernet(space)


def create_supernet(name: str, *, num_classes: int, in_channels: int = 3, **overrides: Any) -> nn.Module:
    """A freshly initialised supernet of preset ``name``.

    ``overrides`` replace fields of the preset's space, e.g. ``resolutions=(28, 32)``.
    """
    return build_supernet(create_space(name, num_classes=num_classes, in_channels=in_channels, **overrides))
