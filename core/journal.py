"""Append-only CSV journals: one row per finished unit of work, durable at once, resumable.

A process killed mid-write can leave a torn last line; reading a journal keeps the complete
rows, rewrites the file atomically, and new rows then append after a clean line end.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from elasticnas.core.atomic import atomic_write_json, atomic_write_text
from elasticnas.core.errors import ConfigError
from elasticnas.core.files import CorruptFileError, read_csv, read_json, reading


def journal_columns(path: str | os.PathLike) -> list[str] | None:
    """The header of the journal at ``path``; None when it does not exist or is empty."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return None
    with reading(path, "journal"), open(path, encoding="utf-8", newline="") as handle:
        return next(csv.reader(handle), None)


def open_append(path: str | os.PathLike):
    """``path`` opened for appending text, never through a symbolic link (a link placed in a run
    folder must not make a command write outside it)."""
    path = check_appendable(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError:
        check_appendable(path)  # it became a link since: say so
        raise
    return os.fdopen(fd, "a", newline="", encoding="utf-8")


def check_appendable(path: str | os.PathLike) -> Path:
    """``path``, refused when it is a symbolic link (checked before work that ends in appending)."""
    path = Path(path)
    if path.is_symlink():
        raise ConfigError(f"{path} is a symbolic link; elasticnas appends to it only as a plain file "
                          f"(replace the link with a copy of the file)")
    return path


def append_row(handle, row: dict, columns: Sequence[str] | None = None) -> None:
    """Write ``row`` to an open text handle (header first if the file is empty) and fsync it.

    ``columns``: the journal's header, when it was written by an older version with fewer
    columns; the row's other fields are left out, so every line keeps the header's length.
    """
    new_file = handle.tell() == 0
    writer = csv.DictWriter(handle, fieldnames=list(columns or row), extrasaction="ignore")
    if new_file:
        writer.writeheader()
    writer.writerow(row)
    handle.flush()
    os.fsync(handle.fileno())


def read_journal(path: str | os.PathLike, required: Sequence[str] = (), numeric: Sequence[str] = (),
                 what: str = "journal") -> pd.DataFrame:
    """The complete rows of the journal at ``path`` (empty if it does not exist); ``required``
    columns must be there and ``numeric`` ones hold numbers."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=list(required))
    with reading(path, what):
        text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    header = next(csv.reader(lines[:1]), [])
    kept = [lines[0]] if lines else []
    for line in lines[1:]:
        if not line.endswith("\n"):
            continue  # torn by a kill mid-write
        fields = next(csv.reader([line]), [])
        if len(fields) == len(header):
            kept.append(line)
    clean = "".join(kept)
    if clean != text:
        atomic_write_text(path, clean)
    if len(kept) <= 1:
        missing = [c for c in required if header and c not in header]
        if missing:
            raise CorruptFileError(f"{path} is not a valid {what}: it lacks the columns {missing}")
        return pd.DataFrame(columns=header or list(required))
    return read_csv(path, what, columns=required, numeric=numeric, source=clean)


def keep_settings(path: str | os.PathLike, settings: dict, what: str, advice: str) -> bool:
    """Record ``settings`` at ``path``, or check them against those recorded there.

    Returns True when the settings were already recorded (work to resume); raises naming
    the keys that differ, then ``advice``, when they do not match.
    """
    path = Path(path)
    if path.exists():
        previous = read_json(path, what + " settings", fields=())
        if previous != settings:
            changed = sorted(k for k in set(settings) | set(previous) if previous.get(k) != settings.get(k))
            raise ConfigError(f"{path.parent} holds {what} with other settings ({', '.join(changed)}); {advice}")
        return True
    atomic_write_json(path, settings)
    return False
