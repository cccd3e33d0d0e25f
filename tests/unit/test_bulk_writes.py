"""A bulk flush writes on the driver's connection (projections/store/bulk_writes.py); its
errors must be told apart as a batch's are: a dropped connection, a locked file or a full
disk is retried, a refusal of the rows is not (the projector then isolates runs)."""
from __future__ import annotations

import sqlite3
from types import SimpleNamespace

import asyncpg
import pytest
from sqlalchemy.dialects import postgresql, sqlite

from projections.runtime.storage_full import is_storage_full
from projections.runtime.transient import is_transient
from projections.store.bulk_writes import as_store_error

CASES = [
    (sqlite.dialect(), sqlite3.OperationalError("database is locked"), True),
    (sqlite.dialect(), sqlite3.IntegrityError("UNIQUE constraint failed: runs.run_id"), False),
    (postgresql.dialect(), asyncpg.exceptions.ConnectionDoesNotExistError(
        "connection was closed in the middle of operation"), True),
    (postgresql.dialect(), asyncpg.exceptions.AdminShutdownError(
        "terminating connection due to administrator command"), True),
    (postgresql.dialect(), asyncpg.exceptions.UniqueViolationError("duplicate key value violates unique constraint"),
     False),
    (postgresql.dialect(), asyncpg.exceptions.DiskFullError("could not extend file"), True),
]


@pytest.mark.parametrize("dialect, error, transient", CASES, ids=[type(e).__name__ for _, e, _ in CASES])
def test_a_driver_error_is_sorted_as_the_same_error_from_a_statement(dialect, error, transient):
    wrapped = as_store_error(SimpleNamespace(dialect=dialect), "COPY runs", error)
    assert wrapped.orig is error
    assert is_transient(wrapped) is transient
    assert is_storage_full(wrapped) is isinstance(error, asyncpg.exceptions.DiskFullError)

