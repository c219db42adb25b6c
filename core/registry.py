"""One registry helper for every name -> object mapping in elasticnas.

Supernet presets, families, sampling strategies, search algorithms, estimators, runtimes and
datasets are all :class:`Registry` objects: names are unique, listings are sorted, and an
unknown name fails with the list of known ones. The CLI reads its choices from here.

>>> algorithms = Registry("search algorithm")
>>> @algorithms.register("random")
... def random_search(problem): ...
>>> algorithms.names()
['random']
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from elasticnas.core.errors import ConfigError, unknown_name

T = TypeVar("T")


class Registry(Generic[T]):
    """A named mapping filled by ``@registry.register(name)``; ``kind`` names it in errors."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, value: T | None = None) -> Callable[[T], T] | T:
        """Register ``value`` under ``name`` (or decorate it); a name already taken is refused."""
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a {self.kind} needs a non-empty string name, but got {name!r}")

        def decorate(obj: T) -> T:
            if name in self._entries:
                raise ConfigError(f"{self.kind} {name!r} is already registered; choose another name")
            self._entries[name] = obj
            return obj

        return decorate if value is None else decorate(value)

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise unknown_name(self.kind, name, self._entries)
        return self._entries[name]

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names, sorted, filtered by a shell-style ``pattern``."""
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def items(self) -> list[tuple[str, T]]:
        return [(name, self._entries[name]) for name in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
