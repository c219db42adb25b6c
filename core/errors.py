"""The small exception hierarchy every room of elasticnas raises at its boundary.

Each error is also a ``ValueError`` (or ``LookupError``) so callers that predate
elasticnas can catch it the usual way; messages name the bad value and what is allowed.
"""

from __future__ import annotations


class ElasticNASError(Exception):
    """Base class of every error elasticnas raises on purpose."""


class InvalidArchitectureError(ElasticNASError, ValueError):
    """An architecture does not belong to the search space it was checked against."""


class ConfigError(ElasticNASError, ValueError):
    """A configuration, override or argument has an unknown key or a bad value."""


class UnknownNameError(ElasticNASError, LookupError):
    """A registry was asked for a name it does not hold."""

    def __str__(self) -> str:  # LookupError would quote the message like a key
        return str(self.args[0]) if self.args else ""


def unknown_name(kind: str, name: str, known) -> UnknownNameError:
    known = sorted(known)
    return UnknownNameError(f"unknown {kind} {name!r}; choose one of: {', '.join(known)}")
