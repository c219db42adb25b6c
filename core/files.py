"""Reading files at the boundary: whatever is wrong with a file becomes one line naming it.

Every reader of a file the user can touch (architecture JSON, configs, latency tables,
predictors, journals, export folders) parses inside :func:`reading`, so a truncated, random
or hand-edited file gives ``CorruptFileError: PATH is not a valid WHAT: REASON`` and never a
traceback from deep inside pandas, json or zipfile.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from elasticnas.core.errors import ConfigError, ElasticNASError


class CorruptFileError(ConfigError):
    """A file exists but is not what it should be."""


def _reason(error: BaseException) -> str:
    if isinstance(error, KeyError) and error.args and isinstance(error.args[0], str):  # our own field lookups
        return f"missing field {error.args[0]!r}"
    if isinstance(error, UnicodeDecodeError):
        return "not text (undecodable bytes)"
    if isinstance(error, json.JSONDecodeError):
        return f"not JSON ({error.msg} at line {error.lineno}, column {error.colno})"
    text = " ".join(str(error).split()).split(". ")[0]  # its first sentence, on one line
    return f"{type(error).__name__}: {text[:200]}" if text else type(error).__name__


@contextmanager
def reading(path: str | os.PathLike, what: str) -> Iterator[Path]:
    """Parse ``path`` inside this block; any failure that is not already ours names the file."""
    path = Path(path)
    try:
        yield path
    except (FileNotFoundError, PermissionError):
        raise
    except ElasticNASError as error:  # one line already; say which file, unless it does
        if str(path) in str(error):
            raise
        raise CorruptFileError(f"{path} is not a valid {what}: {error}") from None
    except Exception as error:  # KeyError, UnicodeDecodeError, zipfile.BadZipFile, pandas' and torch's own errors
        raise CorruptFileError(f"{path} is not a valid {what}: {_reason(error)}") from None


def read_json(path: str | os.PathLike, what: str, *, fields: Iterable[str] | None = None) -> Any:
    """The JSON in ``path``; with ``fields`` (even none), it must be an object holding them."""
    with reading(path, what) as path:
        data = json.loads(path.read_text(encoding="utf-8"))
        if fields is None:
            return data
        required = list(fields)
        if not isinstance(data, dict):
            raise CorruptFileError(f"{path} is not a valid {what}: expected a JSON object, got "
                                   f"{type(data).__name__}")
        missing = [f for f in required if f not in data]
        if missing:
            raise CorruptFileError(f"{path} is not a valid {what}: missing field {missing[0]!r}")
        return data


def read_csv(path: str | os.PathLike, what: str, *, columns: Iterable[str] = (), numeric: Iterable[str] = (),
             source: str | None = None) -> pd.DataFrame:
    """The table in ``path`` (or in the text ``source`` read from it), with the given columns
    present and the ``numeric`` ones holding numbers only."""
    with reading(path, what) as path:
        frame = pd.read_csv(path if source is None else io.StringIO(source))
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise CorruptFileError(f"{path} is not a valid {what}: it lacks the columns {missing}")
        for column in numeric:
            values = pd.to_numeric(frame[column], errors="coerce")
            bad = values.isna() & frame[column].notna()
            if bad.any():
                row = int(bad.to_numpy().argmax())
                raise CorruptFileError(f"{path} is not a valid {what}: row {row + 1}, column {column!r} holds "
                                       f"{frame[column].iloc[row]!r}, not a number")
            frame[column] = values
        return frame
