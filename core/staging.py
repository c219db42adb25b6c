"""Folders that appear whole or not at all.

A folder of several files (an export: weights, compiled models, a report) is built under a
hidden name beside its target and renamed into place only once every file is written and
checked. A kill or a refusal leaves the target as it was: the old folder whole, or nothing.
An existing target is replaced whole, never merged into, so one folder never holds files of
two different builds.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from elasticnas.core.errors import ConfigError
from elasticnas.core.run_layout import LOCK as LOCK_FILE


def staging_folder(out: str | os.PathLike) -> Path:
    """Where ``out`` is built before it is renamed into place (a hidden sibling)."""
    out = Path(out)
    return out.parent / f".{out.name}.partial"


def check_replaceable(out: str | os.PathLike, marker: str, what: str) -> Path:
    """Refuse an ``out`` that is a file, a symlink, or a folder holding something other than a
    previous ``what`` (recognised by its ``marker`` file): replacing it would delete the user's files."""
    out = Path(out)
    if out.is_symlink():
        raise ConfigError(f"{what} folder {out} is a symbolic link; give the real folder")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{what} folder {out} is an existing file; choose a folder")
    if out.is_dir() and any(p.name != LOCK_FILE for p in out.iterdir()) and not (out / marker).is_file():
        raise ConfigError(f"{out} already holds files and is not a {what} (it has no {marker}); choose a new or "
                          f"empty folder (a previous {what} there would be replaced whole)")
    return out


@contextmanager
def staged_folder(out: str | os.PathLike, *, marker: str, what: str = "export",
                  keep_on_failure: bool = False) -> Iterator[Path]:
    """Yield an empty hidden folder to build ``out`` in; when the block ends normally, it
    replaces ``out`` whole. On an error it is removed, unless ``keep_on_failure`` (it then holds
    resumable work, e.g. a checkpoint, and the next build in it resumes)."""
    out = check_replaceable(out, marker, what)
    stage = staging_folder(out)
    if stage.exists() and not keep_on_failure:
        shutil.rmtree(stage)
    stage.mkdir(parents=True, exist_ok=True)
    try:
        yield stage
    except BaseException:
        if not keep_on_failure:
            shutil.rmtree(stage, ignore_errors=True)
        raise
    replace_folder(stage, out)


def replace_folder(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target``; an existing ``target`` is moved aside first and then
    deleted, so ``target`` names the old folder whole, nothing, or the new folder whole."""
    old = target.parent / f".{target.name}.replaced"
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.rename(target, old)
    os.rename(source, target)
    _sync_folder(target.parent)
    if old.exists():
        shutil.rmtree(old)


def _sync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms that cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
