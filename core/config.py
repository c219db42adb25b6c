"""Typed configs: frozen dataclasses parsed strictly from plain dicts (YAML at the edge).

Unknown keys and bad values are rejected with their dotted name and what is allowed.
``apply_overrides`` takes ``key.path=value`` strings (values parsed as YAML scalars).
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
from collections.abc import Iterable, Mapping
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from elasticnas.core.errors import ConfigError

_EXPONENT = re.compile(r"[-+]?[0-9]+(\.[0-9]*)?[eE][-+]?[0-9]+")


def parse_config(cls: type, data: Mapping[str, Any] | None, path: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``, recursing into nested dataclasses."""
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path or cls.__name__} must be a mapping, but got {data!r}")
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(data) - set(names))
    if unknown:
        where = f"{path}." if path else ""
        raise ConfigError(f"unknown config key '{where}{unknown[0]}'; allowed keys: {', '.join(names)}")
    values = {name: _coerce(hints[name], data[name], f"{path}.{name}" if path else name)
              for name in names if name in data}
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{path or cls.__name__}: {error}") from None


def _coerce(kind: Any, value: Any, path: str) -> Any:
    origin = get_origin(kind)
    if dataclasses.is_dataclass(kind):
        return parse_config(kind, value, path)
    if origin is Literal:
        allowed = get_args(kind)
        if value not in allowed:
            raise ConfigError(f"{path}={value!r} is not allowed; choose one of {list(allowed)}")
        return value
    if origin in (Union, types.UnionType):
        options = get_args(kind)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, path)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path}={value!r} has the wrong type ({kind})")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path} must be a list, but got {value!r}")
        args = get_args(kind)
        item = args[0] if args else Any
        return tuple(_coerce(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict or kind is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path} must be a mapping, but got {value!r}")
        return dict(value)
    if kind is Any:
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path} must be true or false, but got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path} must be an integer, but got {value!r}")
        return value
    if kind is float:
        if isinstance(value, str) and _EXPONENT.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path} must be a number, but got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path} must be a string, but got {value!r}")
        return value
    return value


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain, YAML/JSON-ready dict of a config dataclass (tuples become lists)."""
    def plain(value):
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``a.b.c=value`` applied (value read as YAML)."""
    result = _deep_copy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} must look like key.path=value")
        node = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        try:
            node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as error:
            reason = " ".join(str(getattr(error, "problem", None) or error).split())
            raise ConfigError(f"override {item!r}: the value is not YAML ({reason}); quote text, "
                              f"e.g. {key.strip()}='\"{raw}\"'") from None
    return result


def load_yaml(path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or " ".join(str(error).split())
        raise ConfigError(f"config file {path} is not valid YAML: {problem}{where}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not text (undecodable bytes)") from None
    if data is None:
        raise ConfigError(f"config file {path} is empty; it must hold a mapping of settings (an empty file would "
                          f"silently mean every default)")
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings at the top level, not "
                          f"{type(data).__name__}")
    return data


def _deep_copy(data):
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


__all__ = ["apply_overrides", "config_to_dict", "load_yaml", "parse_config"]


def require_range(key: str, value, *, low: float | None = None, above: float | None = None,
                  high: float | None = None, below: float | None = None) -> None:
    """``value`` is a finite number within the bounds given (``low``/``high`` inclusive,
    ``above``/``below`` exclusive); else one line naming ``key``, the value and what is allowed."""
    bounds = [f">= {low}" if low is not None else "", f"> {above}" if above is not None else "",
              f"<= {high}" if high is not None else "", f"< {below}" if below is not None else ""]
    allowed = " and ".join(b for b in bounds if b) or "any finite number"
    number = not isinstance(value, bool) and isinstance(value, int | float)
    ok = number and math.isfinite(value) and (low is None or value >= low) and (above is None or value > above) \
        and (high is None or value <= high) and (below is None or value < below)
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed: it must be a finite number {allowed}")
