"""A run's parent: the supernet whose weights it starts from (``init.source``).

A parent is a run folder (its ``checkpoint.pt`` from training, or ``supernet.safetensors`` from
an import) or one such file. Its sha256 is recorded in the child's config when training
starts, and resuming keeps the recorded one.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file
from torch import Tensor, nn

from elasticnas.core.errors import ConfigError
from elasticnas.core.files import reading
from elasticnas.core.run_layout import CHECKPOINT as TRAINED_WEIGHTS
from elasticnas.core.run_layout import CONFIG, IMPORTED_WEIGHTS
from elasticnas.supernet.foreign import read_tensor_file
from elasticnas.supernet.transfer import inherit_weights


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parent_weights_file(source: str | os.PathLike) -> Path:
    """The weights file of ``source``: itself, or the one its run folder holds."""
    path = Path(source).expanduser()
    if path.is_dir():
        for name in (TRAINED_WEIGHTS, IMPORTED_WEIGHTS):
            if (path / name).is_file():
                return path / name
        raise ConfigError(f"init.source {path} is a folder without {TRAINED_WEIGHTS} or {IMPORTED_WEIGHTS}; "
                          f"give a run folder (trained or imported) or a checkpoint file")
    if not path.is_file():
        raise ConfigError(f"init.source {path} does not exist; give a run folder or a checkpoint file")
    return path


def read_weights(path: str | os.PathLike) -> dict[str, Tensor]:
    """The supernet tensors in a safetensors file or a weights-only torch checkpoint (never unpickled code)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        with reading(path, "safetensors file"):
            return load_file(path)
    return read_tensor_file(path)


def safe_open_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata of a safetensors file."""
    with reading(path, "safetensors file"), safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata() or {})


def with_parent_space(config):
    """``config`` training the parent's own derived space (an elasticized model) when the parent is a run
    folder that has one and ``config`` names no space of its own: a model's supernet trains as itself."""
    from dataclasses import replace

    from elasticnas.core.config import load_yaml

    folder = Path(config.init.source).expanduser()
    if config.supernet.space is not None or not (folder / CONFIG).is_file():
        return config
    parent = (load_yaml(folder / CONFIG).get("supernet") or {})
    if not isinstance(parent, dict) or parent.get("space") is None:
        return config
    return replace(config, supernet=type(config.supernet)(**parent))


def with_parent_recorded(config):
    """``config`` with ``init.sha256`` of its parent's weights (checked against a given one)."""
    found = file_sha256(parent_weights_file(config.init.source))
    if config.init.sha256 not in (None, found):
        raise ConfigError(f"init.sha256={config.init.sha256} but {config.init.source} now hashes to {found}; "
                          f"the parent changed since this config was written")
    return replace(config, init=replace(config.init, sha256=found))


def inherit_parent(supernet: nn.Module, config) -> list[str]:
    """Load the parent of ``config`` into ``supernet``; returns lines saying what was taken and adapted."""
    path = parent_weights_file(config.init.source)
    notes = inherit_weights(supernet, read_weights(path), input_filters=config.init.input_filters,
                            reset_classifier=config.init.reset_classifier)
    return [f"starting from {path} (sha256 {config.init.sha256[:12]}...)", *(f"  {note}" for note in notes)]
