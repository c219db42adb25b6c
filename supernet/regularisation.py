"""Stochastic regularisation (dropout, stochastic depth) that the trainer can turn off per subnet.

BigNAS regularises only the largest child: the smaller ones, which learn from its
predictions, underfit rather than overfit. Elastic modules ask :func:`regularising` instead
of ``self.training``; :func:`regularisation_off` makes it false for every module of a model
for the forward passes inside, leaving batch norm in training mode.
"""

from __future__ import annotations

import contextlib

from torch import nn

_FLAG = "_regularise"


def regularising(module: nn.Module) -> bool:
    """Whether ``module`` applies dropout and stochastic depth now."""
    return module.training and getattr(module, _FLAG, True)


@contextlib.contextmanager
def regularisation_off(model: nn.Module, off: bool = True):
    """Inside, every module of ``model`` skips dropout and stochastic depth (when ``off``)."""
    if not off:
        yield model
        return
    modules = list(model.modules())
    for module in modules:
        setattr(module, _FLAG, False)
    try:
        yield model
    finally:
        for module in modules:
            module.__dict__.pop(_FLAG, None)
