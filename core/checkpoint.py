"""Training checkpoints: written atomically, loaded without executing pickled code."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from elasticnas.core.atomic import atomic_write_bytes
from elasticnas.core.errors import ConfigError
from elasticnas.core.files import reading


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike, *, space_fingerprint: str | None = None) -> dict[str, Any]:
    """Load with ``weights_only=True``; refuse a checkpoint of another space."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"no checkpoint at {path}")
    with reading(path, "weights-only torch checkpoint"):  # truncated, foreign, or holding code
        state = torch.load(path, map_location="cpu", weights_only=True)
    if space_fingerprint is None:
        return state
    found = state.get("space_fingerprint") if isinstance(state, dict) else None
    if found != space_fingerprint:
        raise ConfigError(
            f"checkpoint {path} belongs to supernet {state.get('supernet_name')!r} (space fingerprint {found}), "
            f"not to this one (fingerprint {space_fingerprint}); use the matching config or a new run folder"
        )
    return state
