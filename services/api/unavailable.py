"""A dependency that did not answer in time is a 503, never a 500 or a hang.

Every wait on a dependency is bounded (services/settings.py): an append to Kafka
(`RUNLEDGER_KAFKA_TIMEOUT`), a PostgreSQL statement, connect or pool checkout
(`RUNLEDGER_POSTGRES_TIMEOUT`), a SQLite lock (`RUNLEDGER_SQLITE_BUSY_TIMEOUT`). What
they raise past the bound, and the other transient faults of a store or the log (a
dropped connection, a server restarting), are answered **503** `unavailable` with
`Retry-After` and a message naming the dependency, wherever they surface: in a route
(an exception handler) or in a middleware (the request id layer's last resort).
"""
from __future__ import annotations

import sqlite3

from starlette.responses import Response

from events.log import LogUnavailable
from projections.runtime.transient import is_transient

RETRY_AFTER = "1"


def dependency_of(exc: BaseException) -> str | None:
    """Which dependency failed transiently, or None for anything else (a bug, bad input)."""
    if isinstance(exc, LogUnavailable):
        return exc.dependency
    if not is_transient(exc):
        return _postgres_fault(exc)
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, sqlite3.Error):
        return "SQLite"
    module = type(orig).__module__
    if "asyncpg" in module or "postgresql" in module:
        return "PostgreSQL"
    if "aiokafka" in module:
        return "Kafka"
    if type(exc).__module__.startswith("sqlalchemy"):  # a pool checkout that timed out
        return "the database"
    return "a dependency"


def _postgres_fault(exc: BaseException) -> str | None:
    """asyncpg's own errors, met where SQLAlchemy does not wrap them (the fast read path):
    a statement cancelled by its timeout (57014) or by an operator, a connection lost."""
    sqlstate = getattr(exc, "sqlstate", None)
    if "asyncpg" in type(exc).__module__ and sqlstate and sqlstate[:2] in ("57", "08"):
        return "PostgreSQL"
    return None


def answer(exc: BaseException) -> Response | None:
    """The 503 for a dependency fault, or None."""
    from .errors import envelope  # errors installs the handlers that call this

    dependency = dependency_of(exc)
    if dependency is None:
        return None
    orig = getattr(exc, "orig", None) or exc  # the driver's words, never SQLAlchemy's statement and parameters
    said = str(orig).splitlines()[0][:300] if str(orig) else type(orig).__name__
    return envelope(503, "unavailable", f"{dependency} is unavailable or did not answer in time; retry shortly "
                                        f"({said})",
                    {"dependency": dependency, "reason": type(orig).__name__}, {"Retry-After": RETRY_AFTER})
