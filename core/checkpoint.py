"""Training checkpoints: written atomically, loaded without executing pickled code."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from elasticnas.core.atomic import atomic_write_bytes
from elasticnas.core.errors import ConfigError


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike, *, space_fingerprint: str | None = None) -> dict[str, Any]:
    """Load with ``weights_only=True``; refuse a checkpoint of another space."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file
        raise ConfigError(f"cannot read checkpoint {path}: {error}") from None
    found = state.get("space_fingerprint")
    if space_fingerprint is not None and found != space_fingerprint:
        raise ConfigError(
            f"checkpoint {path} belongs to supernet {state.get('supernet_name')!r} (space fingerprint {found}), "
            f"not to this one (fingerprint {space_fingerprint}); use the matching config or a new run folder"
        )
    return state
