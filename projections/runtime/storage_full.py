"""A full disk is a fault of the environment, not of the work: recognise it wherever it
surfaces, so that it is retried (projections/runtime/transient.py), answered 503
`storage_full` by the API (services/api/storage_full.py) and named in health.

What counts: SQLite's SQLITE_FULL ("database or disk is full"; also a database at its
`max_page_count`), PostgreSQL's SQLSTATE 53100 `disk_full`, and `OSError` ENOSPC or
EDQUOT on any file. PostgreSQL's other class-53 states (insufficient resources: out of
memory, too many connections) are transient too, but not a full disk.

The exception chain is searched (`__cause__`, `__context__`, a driver error's `orig`):
SQLite rolls a whole transaction back on SQLITE_FULL, so what surfaces is often a
follow-on error ("no such savepoint", "cannot rollback - no transaction is active")
raised while handling the full disk. If a full disk is anywhere in the chain, the
failure is the disk's.
"""
from __future__ import annotations

import errno
import sqlite3
from typing import Iterator

STORAGE_FULL = "storage full"
"""How a retried fault is named in the projector's heartbeat `detail` and in health."""
SQLITE_FULL = 13
PG_DISK_FULL = "53100"
PG_INSUFFICIENT_RESOURCES = "53"  # SQLSTATE class
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_FULL_TEXT = "database or disk is full"  # sqlite3 errors without a code (before Python 3.11)


def is_storage_full(exc: BaseException) -> bool:
    """True when a full disk (or quota) is behind `exc`, anywhere in its chain."""
    return any(_full(e) for e in _chain(exc))


def is_resource_shortage(exc: BaseException) -> bool:
    """PostgreSQL SQLSTATE class 53 (disk full, out of memory, too many connections)."""
    return any(str(getattr(e, "sqlstate", None) or "").startswith(PG_INSUFFICIENT_RESOURCES) for e in _chain(exc))


def describe(exc: BaseException) -> str:
    """A fault in a line: `storage full: <first line>` for a full disk, else `<type>: <first line>`."""
    head = STORAGE_FULL if is_storage_full(exc) else type(exc).__name__
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{head}: {text[:200]}" if text else head


def _full(e: BaseException) -> bool:
    """By code, never by the text of just any error: a fold error may quote an event's
    content, and a tenant must not be able to turn a bug into an endless retry."""
    if isinstance(e, OSError) and e.errno in _FULL_ERRNOS:
        return True
    if isinstance(e, sqlite3.Error):
        code = getattr(e, "sqlite_errorcode", None)
        return code == SQLITE_FULL if code is not None else _FULL_TEXT in str(e)
    return getattr(e, "sqlstate", None) == PG_DISK_FULL


def _chain(exc: BaseException, limit: int = 16) -> Iterator[BaseException]:
    """`exc`, the driver error it wraps, and what it was raised from or while handling."""
    seen: set[int] = set()
    todo = [exc]
    while todo and len(seen) < limit:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [getattr(e, "orig", None), e.__cause__, e.__context__]
