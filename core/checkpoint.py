"""Training checkpoints: written atomically, loaded without executing pickled code."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import torch

from elasticnas.core.atomic import atomic_write_bytes
from elasticnas.core.errors import ConfigError
from elasticnas.core.files import CorruptFileError, reading

DIGEST = "model_sha256"  # of the weights under "model": a byte changed after writing is caught on load


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    if isinstance(state.get("model"), dict):
        state = {**state, DIGEST: weights_digest(state["model"])}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def weights_digest(weights: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(weights):
        tensor = weights[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def load_checkpoint(path: str | os.PathLike, *, space_fingerprint: str | None = None) -> dict[str, Any]:
    """Load with ``weights_only=True``; refuse a checkpoint of another space."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"no checkpoint at {path}")
    with reading(path, "weights-only torch checkpoint"):  # truncated, foreign, or holding code
        state = torch.load(path, map_location="cpu", weights_only=True)
    recorded = state.get(DIGEST) if isinstance(state, dict) else None
    if recorded is not None:
        with reading(path, "weights-only torch checkpoint"):
            found = weights_digest(state["model"])
        if found != recorded:
            raise CorruptFileError(f"{path} changed after it was written (its weights' sha256 differs from the one "
                                   f"it records); restore it or train again")
    if space_fingerprint is None:
        return state
    found = state.get("space_fingerprint") if isinstance(state, dict) else None
    if found != space_fingerprint:
        raise ConfigError(
            f"checkpoint {path} belongs to supernet {state.get('supernet_name')!r} (space fingerprint {found}), "
            f"not to this one (fingerprint {space_fingerprint}); use the matching config or a new run folder"
        )
    return state
