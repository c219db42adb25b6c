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
from elasticnas.core.run_layout import LOCK as LOCK_FILE

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks; writers are not serialised there
    fcntl = None


class FolderLockedError(ElasticNASError):
    """Another process is writing the folder."""


@contextmanager
def exclusive_writer(folder: str | os.PathLike, command: str, *, create: bool = True) -> Iterator[Path]:
    """Hold the write lock of ``folder`` while the block runs. A missing folder is created, or with
    ``create=False`` left alone (and unlocked: the command will say it is missing). The lock file
    exists only while held, and is never reached through a symbolic link."""
    folder = Path(folder)
    if not folder.is_dir() and not create:
        yield folder
        return
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    fd = _locked_file(path, folder)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "command": command, "since": time.time()}).encode())
        yield folder
    finally:
        if _same_file(path, fd):
            path.unlink()  # while still locked: a writer that opened it before now finds it replaced
        if created and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()  # a command that failed before writing anything leaves no folder behind
        os.close(fd)


def _locked_file(path: Path, folder: Path) -> int:
    """An open descriptor of ``path`` holding its lock; refuses a symlink and a held lock."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as error:
            if path.is_symlink():
                raise ElasticNASError(f"{path} is a symbolic link; remove it (elasticnas writes its lock there "
                                      f"and never through a link)") from None
            raise error
        if fcntl is None:
            return fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderLockedError(f"{folder} is being written by {_holder(path)}; wait for it to finish "
                                    f"or stop it (one writer per folder; reading it is fine)") from None
        if _same_file(path, fd):
            return fd
        os.close(fd)  # its holder removed it as we locked it: lock the file there now


def _same_file(path: Path, fd: int) -> bool:
    try:
        return os.path.samestat(os.stat(path, follow_symlinks=False), os.fstat(fd))
    except FileNotFoundError:
        return False


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["since"])))
        return f"pid {int(info['pid'])} ({info['command']}, since {since})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (it has not said which yet)"
