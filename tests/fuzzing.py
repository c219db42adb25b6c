"""What the fuzz tests share: ways to spoil a file, the property every reader must keep, and a tally.

A spoiled file is random bytes, the good file truncated or with one byte changed, or (for
JSON, YAML and CSV) the good file with one field removed or given a value of another type.
The property: a reader returns, or raises our one-line error; anything else, or taking
longer than ``TIME_LIMIT_S``, fails the test. ``ELASTICNAS_FUZZ_PROFILE=thorough`` tries
many more inputs (``experiments/bench_fuzz.py``), and ``ELASTICNAS_FUZZ_LOG=FILE`` appends
one row per input tried (kind, how it was spoiled, outcome) for the benchmark's counts.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import os
import signal
from pathlib import Path

import yaml
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st

from elasticnas.core.errors import ElasticNASError

TIME_LIMIT_S = 120
_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                      HealthCheck.data_too_large]}
# quick: derandomised, so CI sees the same inputs every run; thorough: fresh random inputs.
settings.register_profile("quick", max_examples=12, derandomize=True, **_COMMON)
settings.register_profile("thorough", max_examples=150, **_COMMON)
PROFILE = os.environ.get("ELASTICNAS_FUZZ_PROFILE", "quick")


def examples(quick: int, thorough: int | None = None) -> settings:
    """Settings for one fuzz test: ``quick`` inputs in CI, more under the thorough profile."""
    base = settings.get_profile(PROFILE)
    return settings(base, max_examples=quick if PROFILE == "quick" else (thorough or base.max_examples))


JUNK = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=12),
                 st.lists(st.integers(-5, 300), max_size=4), st.dictionaries(st.text(max_size=4), st.integers(),
                                                                             max_size=2))


def _paths(value, prefix=()):
    yield prefix
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield from _paths(child, (*prefix, key))


def _set(value, path, new, remove: bool = False):
    if not path:
        return new
    value = copy.deepcopy(value)
    parent = value
    for key in path[:-1]:
        parent = parent[key]
    if remove:
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return value


def _load(kind: str, text: str):
    if kind == "json":
        return json.loads(text)
    if kind == "yaml":
        return yaml.safe_load(text)
    return list(csv.reader(io.StringIO(text)))


def _dump(kind: str, value) -> bytes:
    if kind == "json":
        return json.dumps(value).encode()
    if kind == "yaml":
        return yaml.safe_dump(value, sort_keys=False).encode()
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(value)
    return out.getvalue().encode()


@st.composite
def spoiled(draw, good: bytes, kind: str = "binary"):
    """``(bytes, how)``: a spoiled version of the good file ``good`` of ``kind`` (json, yaml, csv, binary)."""
    ways = ["random bytes", "truncated", "one byte changed"]
    if kind != "binary":
        ways += ["field of another type", "field removed"]
    how = draw(st.sampled_from(ways))
    if how == "random bytes":
        return draw(st.binary(max_size=2048)), how
    if how == "truncated":
        return good[: draw(st.integers(0, max(len(good) - 1, 0)))], how
    if how == "one byte changed":
        at = draw(st.integers(0, len(good) - 1))
        return good[:at] + bytes([draw(st.integers(0, 255))]) + good[at + 1:], how
    value = _load(kind, good.decode())
    if kind == "csv":  # a cell of another type, or a row cut short
        row = draw(st.integers(0, len(value) - 1))
        column = draw(st.integers(0, len(value[row]) - 1))
        return _dump(kind, _set(value, (row, column), str(draw(JUNK)), remove=how == "field removed")), how
    path = draw(st.sampled_from(list(_paths(value))))
    if how == "field removed" and path:
        return _dump(kind, _set(value, path, None, remove=True)), how
    return _dump(kind, _set(value, path, draw(JUNK))), "field of another type"


class Hang(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: int = TIME_LIMIT_S):
    def expire(*_):
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def outcome_of(read) -> str:
    """Call ``read()``: "accepted", or "refused" with one line; any other exception propagates."""
    with time_limit():
        try:
            read()
        except ElasticNASError as error:
            assert "\n" not in str(error).strip(), f"a refusal of more than one line: {error}"
            return "refused"
        except (FileNotFoundError, PermissionError) as error:  # the CLI's one-line errors too
            assert "\n" not in str(error).strip()
            return "refused"
    return "accepted"


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.name != ".elasticnas.lock"}


def tally(kind: str, how: str, outcome: str) -> None:
    event(f"{kind}: {outcome}")
    log = os.environ.get("ELASTICNAS_FUZZ_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"{kind},{how},{outcome}\n")
