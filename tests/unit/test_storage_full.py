"""Which errors are a full disk: by code, wherever they sit in the exception chain."""
from __future__ import annotations

import errno
import sqlite3

import asyncpg
import pytest
from sqlalchemy.exc import OperationalError

from projections.runtime.storage_full import STORAGE_FULL, describe, is_resource_shortage, is_storage_full
from projections.runtime.transient import is_transient


def sqlite_full_error(tmp_path) -> sqlite3.OperationalError:
    """The real thing: SQLite refusing a page past the database's `max_page_count`."""
    conn = sqlite3.connect(tmp_path / "capped.db", isolation_level=None)
    conn.execute("CREATE TABLE t (v BLOB)")
    conn.execute("PRAGMA max_page_count=3")
    try:
        with pytest.raises(sqlite3.OperationalError) as raised:
            for _ in range(10):
                conn.execute("INSERT INTO t VALUES (randomblob(4000))")
    finally:
        conn.close()
    return raised.value


def wrapped(orig: Exception) -> OperationalError:
    return OperationalError("INSERT ...", {}, orig)


def test_sqlite_full_is_a_full_disk_bare_and_as_sqlalchemy_wraps_it(tmp_path):
    error = sqlite_full_error(tmp_path)
    assert "database or disk is full" in str(error)
    assert is_storage_full(error) and is_storage_full(wrapped(error)) and is_transient(wrapped(error))
    assert describe(wrapped(error)).startswith(f"{STORAGE_FULL}: ")


def test_a_follow_on_error_raised_while_handling_a_full_disk_is_the_disks(tmp_path):
    full = sqlite_full_error(tmp_path)
    try:
        try:
            raise wrapped(full)
        except OperationalError:
            raise wrapped(sqlite3.OperationalError("no such savepoint: sa_savepoint_1"))
    except OperationalError as follow_on:
        assert is_storage_full(follow_on) and is_transient(follow_on)


def test_enospc_and_edquot_on_any_file_and_postgresql_53100_are_full_disks():
    assert is_storage_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_storage_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    disk_full = asyncpg.exceptions.DiskFullError('could not extend file "base/1/2": No space left on device')
    assert disk_full.sqlstate == "53100" and is_storage_full(disk_full) and is_transient(disk_full)


def test_other_postgresql_resource_shortages_are_transient_but_not_a_full_disk():
    too_many = asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already")
    assert is_resource_shortage(too_many) and is_transient(too_many) and not is_storage_full(too_many)


def test_text_that_merely_quotes_a_full_disk_is_not_one():
    """A fold error may quote an event's content: a tenant cannot make a bug look transient."""
    assert not is_storage_full(KeyError("database or disk is full"))
    assert not is_storage_full(ValueError("No space left on device"))
    assert not is_transient(KeyError("database or disk is full"))
    assert not is_storage_full(sqlite3.IntegrityError("UNIQUE constraint failed: t.v"))
