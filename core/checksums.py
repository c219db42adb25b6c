"""Content checksums: a file records the sha256 of the files it describes, and readers compare,
so a byte changed after writing (an edited weight, a CSV number) is caught instead of used."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from elasticnas.core.files import CorruptFileError

_CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_files(folder: str | os.PathLike, recorded: Mapping[str, str], described_by: str) -> None:
    """Every file named in ``recorded`` (relative to ``folder``) exists and has that sha256."""
    folder = Path(folder)
    for name, digest in recorded.items():
        path = folder / name
        if not path.is_file():
            raise CorruptFileError(f"{path} is missing; {described_by} lists it")
        _compare(path, sha256_file(path), digest, described_by)


def verify_bytes(path: str | os.PathLike, data: bytes, recorded: str, described_by: str) -> None:
    """``data``, already read from ``path``, has the sha256 ``described_by`` records for it."""
    _compare(path, sha256_bytes(data), recorded, described_by)


def _compare(path, found: str, recorded: str, described_by: str) -> None:
    if found != recorded:
        raise CorruptFileError(f"{path} changed after it was written (its sha256 differs from the one "
                               f"{described_by} records); write it again")
