"""Optuna studies behind a storage URL: one file per search folder, or a database shared by workers.

A shared study needs a server database (PostgreSQL, MySQL): each worker records a heartbeat
while it evaluates a trial; a trial whose worker stopped beating for two intervals is failed
and its subnet queued again, so a killed worker loses nothing and blocks nothing. (A worker
killed inside optuna's ``ask``, before its trial has parameters or a heartbeat, leaves that
empty trial RUNNING for good; it holds no subnet, and budgets count complete trials.)
"""

from __future__ import annotations

import inspect
import re
import time
import warnings

import optuna

from elasticnas.core.errors import ConfigError

DRIVERS = {"postgresql": "psycopg2-binary (pip install 'elasticnas[postgres]')", "mysql": "PyMySQL"}


def open_storage(url: str, heartbeat_s: int = 10):
    """The optuna storage at ``url``, connected and with its tables made; one line if it cannot be."""
    if not isinstance(heartbeat_s, int) or heartbeat_s < 1:
        raise ConfigError(f"the heartbeat interval must be a whole number of seconds >= 1, but got {heartbeat_s}")
    password = check_storage_url(url)
    try:
        return _storage(url, heartbeat_s)
    except ImportError as error:
        scheme = url.split(":", 1)[0].split("+", 1)[0]
        raise ConfigError(f"the study storage {hide_password(url)} needs a database driver that is not installed "
                          f"({error.name}); install {DRIVERS.get(scheme, 'the driver its URL names')}") from None
    except Exception as error:  # sqlalchemy's errors: bad URL, server down, refused login
        if not type(error).__module__.startswith("sqlalchemy"):
            raise
        reason = hide_password(str(getattr(error, "orig", None) or error).strip().splitlines()[0])
        if password:
            reason = reason.replace(password, "***")
        raise ConfigError(f"cannot open the study storage {hide_password(url)}: {reason}") from None


def check_storage_url(url: str) -> str | None:
    """Refuse a URL that is not a database URL, in one line; returns its password (to mask it)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018  (a port that is not a number fails here)
    except Exception as error:  # sqlalchemy raises ArgumentError or ValueError for a malformed URL
        reason = " ".join(str(error).split())
        raise ConfigError(f"the study storage {hide_password(url)} is not a database URL "
                          f"(dialect://user:password@host:port/database): {hide_password(reason)[:150]}") from None
    query_password = next((v for k, v in parsed.query.items() if k.lower() in _PASSWORD_KEYS), None)
    return parsed.password or (query_password if isinstance(query_password, str) else None)


def open_study(storage, name: str, sampler, n_objectives: int):
    """Create or join the study ``name`` in ``storage`` (in memory when None), minimising ``n_objectives``."""
    try:
        return optuna.create_study(storage=storage, study_name=name, sampler=sampler, load_if_exists=True,
                                   directions=["minimize"] * n_objectives)
    except ValueError as error:  # a study of other directions under this name
        raise ConfigError(f"study {name!r}: {error}") from None


def _storage(url: str, heartbeat_s: int, tries: int = 5):
    """Workers starting at once on a new database race to create optuna's tables; the losers'
    ``CREATE`` fails on a duplicate, and a second look finds the tables made."""
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(tries):
        try:
            return _rdb_storage(url, heartbeat_s)
        except (IntegrityError, ProgrammingError):
            if attempt == tries - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def _rdb_storage(url: str, heartbeat_s: int):
    from optuna.storages import RDBStorage

    retry_class = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or \
        optuna.storages.RetryFailedTrialCallback
    callback_name = ("heartbeat_stale_trial_callback"
                     if "heartbeat_stale_trial_callback" in inspect.signature(RDBStorage).parameters
                     else "failed_trial_callback")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RDBStorage(url, heartbeat_interval=heartbeat_s, **{callback_name: retry_class(max_retry=3)})


_PASSWORD_KEYS = ("password", "passwd", "pwd")


def hide_password(url: str) -> str:
    """The URL with its password (if any, before the host or as a query parameter) replaced by ***;
    everything between the first ``:`` of the user part and the host's ``@`` counts as the password."""
    scheme, separator, rest = url.partition("://")
    if separator:
        location, slash, path = rest.partition("/")
        if "@" in location:
            user_part, host = location.rsplit("@", 1)
            if ":" in user_part:
                location = f"{user_part.split(':', 1)[0]}:***@{host}"
        url = f"{scheme}{separator}{location}{slash}{path}"
    return re.sub(rf"([?&;](?:{'|'.join(_PASSWORD_KEYS)})=)[^&;]*", r"\1***", url, flags=re.IGNORECASE)
