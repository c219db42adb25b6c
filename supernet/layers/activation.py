"""Activation modules by name, shared by the supernet and the static models it exports."""

from __future__ import annotations

from torch import nn

from elasticnas.core.errors import unknown_name

_ACTIVATIONS = {"relu": nn.ReLU, "hswish": nn.Hardswish}


def build_activation(name: str | None) -> nn.Module:
    if name is None:
        return nn.Identity()
    if name not in _ACTIVATIONS:
        raise unknown_name("activation", name, _ACTIVATIONS)
    return _ACTIVATIONS[name]()
