"""Checkpoints written by other projects, read into a supernet of this one.

A family that can read another project's checkpoints registers a *format*: the function that
renames each of that project's tensor names to the supernet's own (None for a tensor that
has no counterpart and may be dropped). Reading checks the result against the supernet
tensor by tensor, so a partial, mis-shaped or foreign file is refused with the first
offending name, before anything is written.

>>> import elasticnas.supernet  # registers every family, and the formats they read
>>> from elasticnas.supernet.foreign import FOREIGN_FORMATS
>>> FOREIGN_FORMATS.names()
['ofa']
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor, nn

from elasticnas.core.checkpoint import load_checkpoint
from elasticnas.core.errors import ConfigError
from elasticnas.core.registry import Registry


@dataclass(frozen=True)
class ForeignFormat:
    family: str  # the supernet family whose modules this format's tensors fill
    rename: Callable[[str], str | None]  # foreign tensor name -> the supernet's, or None to drop it
    description: str


FOREIGN_FORMATS: Registry[ForeignFormat] = Registry("checkpoint format")


def register_foreign_format(name: str, *, family: str, description: str) -> Callable:
    """Decorate a renaming function ``foreign name -> supernet name`` as checkpoint format ``name``."""

    def decorate(rename: Callable[[str], str | None]) -> Callable[[str], str | None]:
        FOREIGN_FORMATS.register(name, ForeignFormat(family, rename, description))
        return rename

    return decorate


def read_tensor_file(path: str | os.PathLike) -> dict[str, Tensor]:
    """The tensors of a ``torch.save`` file (a state dict, or ``{"state_dict": ...}``), read with
    ``weights_only=True`` so that no pickled code runs."""
    path = Path(path)
    data = load_checkpoint(path)
    for key in ("state_dict", "model"):
        if isinstance(data, Mapping) and isinstance(data.get(key), Mapping):
            data = data[key]
            break
    if not isinstance(data, Mapping) or not data:
        raise ConfigError(f"{path} holds no state dict (expected a dict of tensors, or {{'state_dict': ...}})")
    bad = next((k for k, v in data.items() if not isinstance(k, str) or not isinstance(v, Tensor)), None)
    if bad is not None:
        raise ConfigError(f"{path}: entry {bad!r} of the state dict is not a tensor")
    return dict(data)


def convert_foreign_state(format_name: str, foreign: Mapping[str, Tensor], supernet: nn.Module) -> dict[str, Tensor]:
    """``foreign`` renamed to ``supernet``'s tensor names, every tensor present and of the right shape."""
    fmt = FOREIGN_FORMATS.get(format_name)
    if supernet.space.family != fmt.family:
        raise ConfigError(f"checkpoint format {format_name!r} fills the {fmt.family!r} family, but supernet "
                          f"{supernet.space.name!r} is a {supernet.space.family!r}; choose a {fmt.family} preset")
    expected = supernet.state_dict()
    converted: dict[str, Tensor] = {}
    for name, tensor in foreign.items():
        ours = fmt.rename(name)
        if ours is None:
            continue
        if ours not in expected:
            raise ConfigError(f"tensor {name!r} of the checkpoint has no place in {supernet.space.name!r} "
                              f"(it would be {ours!r}); is it a {format_name!r} checkpoint of this supernet?")
        if ours in converted:
            raise ConfigError(f"tensors of the checkpoint collide on {ours!r} (the second is {name!r})")
        if tuple(tensor.shape) != tuple(expected[ours].shape):
            raise ConfigError(f"tensor {name!r} has shape {tuple(tensor.shape)}, but {supernet.space.name!r} needs "
                              f"{tuple(expected[ours].shape)} for it; is this checkpoint of another width or "
                              f"class count?")
        converted[ours] = tensor.to(expected[ours].dtype)
    missing = next((name for name in expected if name not in converted), None)
    if missing is not None:
        raise ConfigError(f"the checkpoint lacks the tensor for {missing!r} of {supernet.space.name!r} "
                          f"({len(converted)} of {len(expected)} found); the file is partial or of another network")
    return converted
