"""One writer per run folder: an advisory ``flock`` on ``RUN/.elasticnas.lock``.

The lock belongs to an open file, so the kernel drops it when its process ends, however it
ends: a killed writer never blocks the next one. The holder writes its pid and command into
the file, so a refused writer can say who holds the folder. Readers take no lock.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from elasticnas.core.errors import ElasticNASError

LOCK_FILE = ".elasticnas.lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks; writers are not serialised there
    fcntl = None


class FolderLockedError(ElasticNASError):
    """Another process is writing the folder."""


@contextmanager
def exclusive_writer(folder: str | os.PathLike, command: str, *, create: bool = True) -> Iterator[Path]:
    """Hold the write lock of ``folder`` while the block runs. A missing folder is created, or with
    ``create=False`` left alone (and unlocked: the command will say it is missing)."""
    folder = Path(folder)
    if not folder.is_dir() and not create:
        yield folder
        return
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    locked = False
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise FolderLockedError(f"{folder} is being written by {_holder(path)}; wait for it to finish "
                                        f"or stop it (one writer per folder; reading it is fine)") from None
        locked = True
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "command": command, "since": time.time()}).encode())
        yield folder
    finally:
        if locked and created and [p.name for p in folder.iterdir()] == [LOCK_FILE]:
            path.unlink()  # a command that failed before writing anything leaves no folder behind
            folder.rmdir()
        os.close(fd)  # releases the lock; the stale text left in the file is never trusted alone


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["since"])))
        return f"pid {int(info['pid'])} ({info['command']}, since {since})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (it has not said which yet)"
