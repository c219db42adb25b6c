"""Rebuilding a graph supernet from its space alone: the recorded import path gives the model,
and elasticizing it again with the recorded options must give the very same space."""

from __future__ import annotations

import copy
import functools
import importlib
import json
import os
import sys

from torch import nn

from elasticnas.core.errors import ConfigError


def import_object(path: str):
    """The object at ``"package.module:attribute.path"`` (the module is imported, nothing else runs); the
    working directory is searched too, as ``python -m`` searches it."""
    if not isinstance(path, str) or path.count(":") != 1:
        raise ConfigError(f"expected MODULE:CALLABLE such as 'mypackage.models:build', but got {path!r}")
    module_name, attribute = path.split(":")
    if os.getcwd() not in sys.path and "" not in sys.path:  # as `python -m` does: the user's own modules import
        sys.path.insert(0, os.getcwd())
    try:
        found = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"cannot import {module_name!r} for {path!r}: {error}") from None
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise ConfigError(f"module {module_name!r} has no {attribute!r} (from {path!r})")
        found = getattr(found, part)
    return found


def build_model(source: str, kwargs: dict) -> nn.Module:
    factory = import_object(source)
    if not callable(factory):
        raise ConfigError(f"{source!r} is not callable; give a function or class returning the nn.Module")
    try:
        model = factory(**kwargs)
    except Exception as error:  # the user's own code: say where it failed, in one line
        raise ConfigError(f"{source}(**{kwargs}) raised {type(error).__name__}: "
                          f"{' '.join(str(error).split())[:200]}") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{source!r} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def supernet_from_space(space):
    """A supernet of ``space`` with the weights its source builds (a run's checkpoint replaces them)."""
    return copy.deepcopy(_rebuilt(space))


@functools.lru_cache(maxsize=4)
def _rebuilt(space):
    """Tracing and analysing the model again takes a while: latency tables ask for many subnets."""
    from elasticnas.supernet.families.graph.elasticize import elasticize, example_like

    if space.source is None:
        raise ConfigError(f"space {space.name!r} was elasticized from a model in memory, so it cannot be rebuilt; "
                          f"pass source='package.module:callable' to elasticize (the CLI records it)")
    options = json.loads(space.options)
    example = options.pop("example")
    leaves = [import_object(leaf) for leaf in options.pop("leaves")]
    net = elasticize(build_model(space.source, space.source_kwargs), example_like(example["shape"], example["dtype"]),
                     **options, leaves=leaves, importance=None, name=space.name, source=space.source,
                     source_args=space.source_kwargs, weights_sha256=space.weights_sha256)
    if net.space.fingerprint != space.fingerprint:
        raise ConfigError(f"{space.source!r} no longer gives the space {space.name!r} was made of (fingerprint "
                          f"{net.space.fingerprint}, recorded {space.fingerprint}): has the model's code changed?")
    return net
