"""A bulk flush's rows, written in bulk: the same `AggregateWrites` a batch prepares
(projections/store/writes.py), new rows copied in.

On PostgreSQL each table's new rows go in with one `COPY ... FROM STDIN` (asyncpg's
`copy_records_to_table`, binary), on SQLite with one `executemany` of the table's INSERT,
both on the driver connection under SQLAlchemy's, in its transaction. Changed rows go through the same compiled UPDATEs as a batch's (an executemany each):
a catch-up writes most aggregates once, as new rows.

The values a COPY sends are the ones an INSERT would have sent: each column's bind
processor (UTC times, NUL-free text, JSON text through the engine's serialiser) applied
here, and a column a row leaves out gets its Python default, as an INSERT gives it. So the
stored rows are the same whichever way they went in (tests/integration/test_bulk.py compares
every column). Every table in `writes.TABLES` is written this way, those added by later
work included, with no change here.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.store import database, writes
from projections.store.database import JsonText
from projections.store.writes import AggregateWrites


async def execute(conn: AsyncConnection, aggregates: Iterable[AggregateWrites]) -> None:
    """`writes.execute`, with each table's new rows copied in at once."""
    if conn.dialect._json_serializer is not database.JSON_CODEC["json_serializer"]:
        raise RuntimeError("prepared JSON needs an engine from projections.store.database.make_engine")
    inserts: dict[str, list] = {}
    updates: dict[str, list] = {}
    for aggregate in aggregates:
        for name, rows in aggregate.inserts.items():
            inserts.setdefault(name, []).extend(rows)
        for name, rows in aggregate.updates.items():
            updates.setdefault(name, []).extend(rows)
    for name, table in writes.TABLES.items():
        if inserts.get(name):
            await copy_rows(conn, table, inserts[name])
        if updates.get(name):
            await conn.execute(writes._UPDATES[name], updates[name])  # noqa: SLF001 - the batch's own statements


async def copy_rows(conn: AsyncConnection, table: Table, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL: one COPY; SQLite: one executemany of the INSERT, both on the driver's
    connection (SQLAlchemy's statement path costs ~20 us a row more than the driver's)."""
    driver = (await conn.get_raw_connection()).driver_connection
    for columns, group in _by_columns(table, rows).items():
        values = [[row[name] for row in group] for name in columns]  # column by column: C loops
        for i, name in enumerate(columns):
            process = _processor(conn, table, name)
            if process is not None:
                values[i] = _processed(values[i], process)
        records = list(zip(*values))
        try:
            if conn.dialect.name == "postgresql":
                await driver.copy_records_to_table(table.name, records=records, columns=list(columns))
            else:
                names = ", ".join(f'"{name}"' for name in columns)
                marks = ", ".join("?" * len(columns))
                await driver.executemany(f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})', records)
        except Exception as exc:  # noqa: BLE001 - the driver's own error, raised as SQLAlchemy's would be
            raise as_store_error(conn, f"COPY {table.name}", exc) from exc


def as_store_error(conn: AsyncConnection, what: str, exc: Exception) -> Exception:
    """A driver error raised on the raw connection, wrapped as SQLAlchemy wraps the same
    error from a statement (`DBAPIError`, named by the driver's class: InterfaceError,
    OperationalError, ...; the driver's error as `.orig`), so the projector tells a
    transient fault (a dropped connection, a locked file, a full disk) from a refusal as it
    does for a batch's INSERT (projections/runtime/transient.py)."""
    if isinstance(exc, DBAPIError):
        return exc
    return DBAPIError.instance(what, None, exc, Exception, dialect=conn.dialect)


def _by_columns(table: Table, rows: list[dict[str, Any]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """Rows grouped by the columns they set, with every Python default filled in (an
    INSERT's values): rows of one table usually set the same columns, so one group."""
    defaults = {c.name: c.default.arg for c in table.columns if c.default is not None and c.default.is_scalar}
    if any(c.default is not None and not c.default.is_scalar for c in table.columns):
        raise NotImplementedError(f"{table.name}: a computed column default; write it with INSERT")
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        missing = [name for name in defaults if name not in row]
        if missing:
            row = {**{name: defaults[name] for name in missing}, **row}
        groups.setdefault(tuple(row), []).append(row)
    return groups


def _processor(conn: AsyncConnection, table: Table, name: str) -> Callable[[Any], Any] | None:
    return table.columns[name].type._cached_bind_processor(conn.dialect)


def _processed(values: list, process: Callable[[Any], Any]) -> list:
    """`process` of each value; JSON the batch already wrote as text is the processor's own
    answer for it (the engine's serialiser hands JsonText back as it is), so it is not called."""
    if values and all(type(v) is JsonText for v in values) and process(values[0]) is values[0]:
        return values
    return list(map(process, values))
