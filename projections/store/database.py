"""Engine construction for the read model (SQLite embedded, PostgreSQL in production)."""
from __future__ import annotations

import json
from dataclasses import dataclass

import orjson
from sqlalchemy import MetaData, event, inspect
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from projections.store import migrate
from projections.store.backfill import AFTER_ADDING
from projections.store.tables import metadata


@dataclass(frozen=True)
class StoreTimeouts:
    """How long one wait on a store may last before it fails as a transient fault (the API
    answers 503 `unavailable`, the projector retries). Set from `RUNLEDGER_POSTGRES_TIMEOUT`
    and `RUNLEDGER_SQLITE_BUSY_TIMEOUT` (services/settings.py)."""

    postgres: float = 10.0  # a statement (server `statement_timeout`), a connect, a pool checkout
    sqlite_busy: float = 5.0  # a SQLite lock held by another connection (`busy_timeout`)

    @property
    def postgres_backstop(self) -> float:
        """The client's own limit on a statement (asyncpg `command_timeout`), for a server
        that does not answer at all (stopped, or the network gone): the server's
        `statement_timeout` normally ends a statement first, with a clearer error."""
        return self.postgres + 2.0


DEFAULT_TIMEOUTS = StoreTimeouts()


def make_engine(url: str, schema: str | None = None, timeouts: StoreTimeouts = DEFAULT_TIMEOUTS) -> AsyncEngine:
    """`schema` (PostgreSQL): a read-model version's own schema, set as the connections'
    `search_path` (projections/runtime/versions.py)."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": timeouts.sqlite_busy}, **JSON_CODEC)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    server_settings = {"statement_timeout": str(int(timeouts.postgres * 1000))}
    if schema:
        server_settings["search_path"] = schema
    connect_args = {"server_settings": server_settings, "timeout": timeouts.postgres,
                    "command_timeout": timeouts.postgres_backstop}
    # No pre-ping (a round trip before every checkout): a connection that fails with a
    # disconnect invalidates the pool, so the next checkout connects afresh. 20 kept open
    # (opened as needed): overflow connections are closed on return, so a pool smaller
    # than the requests in flight reconnects on every request beyond it.
    return create_async_engine(url, pool_size=20, max_overflow=10, pool_timeout=timeouts.postgres,
                               connect_args=connect_args, **JSON_CODEC)


def reader(engine: AsyncEngine) -> AsyncEngine:
    """`engine` for reads: on PostgreSQL in autocommit, so a read is its SELECTs alone
    (no BEGIN and ROLLBACK around them; each statement sees the latest commit, as READ
    COMMITTED did). SQLite's driver never opens a transaction for a SELECT: as is."""
    if engine.dialect.name != "postgresql":
        return engine
    found = getattr(engine.sync_engine, "_runledger_reader", None)
    if found is None:  # kept on the engine itself: making one costs ~0.1 ms
        found = engine.execution_options(isolation_level="AUTOCOMMIT")
        engine.sync_engine._runledger_reader = found
    return found


class JsonText(str):
    """A JSON column value serialised ahead of time (projections/store/writes.py, off the event
    loop): the engine writes it as is."""


def dumps(value) -> JsonText:
    """What the engine would write for `value`, ready now."""
    return JsonText(_dumps(value))


def _dumps(value) -> str:
    if type(value) is JsonText:
        return value
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # what orjson cannot write (an integer beyond 64 bits): as json would
        return json.dumps(value)


def _loads(value):
    if not isinstance(value, (str, bytes)):
        raise TypeError("not JSON text")  # SQLite hands a JSON number back as a number
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:  # what only json reads (NaN in rows written before the limits)
        return json.loads(value)


# JSON columns (states, index bodies) through orjson: the same values as the standard
# library's json, several times faster, and that work runs on the event loop.
JSON_CODEC = {"json_serializer": _dumps, "json_deserializer": _loads}


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """The busy timeout is the driver's `timeout` (make_engine), which sqlite3 sets as
    SQLite's own `busy_timeout`."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


async def create_schema(engine: AsyncEngine) -> None:
    """Embedded default and tests; production schemas come from migrations."""
    await create_tables(engine, metadata, _add_missing_columns, _add_missing_indexes)


async def create_tables(engine: AsyncEngine, tables: MetaData, *then) -> None:
    """`tables.create_all` (and `then`), safe when several processes start on one fresh
    database at once. On SQLite the check-then-create runs in one `BEGIN IMMEDIATE`
    transaction (SQLite's DDL is transactional), so a second process waits for the first
    to commit and then finds every table made. The driver's own transaction handling
    runs DDL outside any transaction, so this uses a short-lived engine of its own."""
    if engine.dialect.name != "sqlite":
        return await _create_all(engine, tables, then)
    exclusive = create_async_engine(engine.url, connect_args={"timeout": 30})
    event.listen(exclusive.sync_engine, "connect", _sqlite_pragmas)
    event.listen(exclusive.sync_engine, "connect", _driver_leaves_transactions_alone)
    event.listen(exclusive.sync_engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    try:
        await _create_all(exclusive, tables, then)
    finally:
        await exclusive.dispose()


async def _create_all(engine: AsyncEngine, tables: MetaData, then) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(tables.create_all)
        for step in then:
            await conn.run_sync(step)


def _driver_leaves_transactions_alone(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None


def _add_missing_columns(sync_conn) -> None:
    """`create_all` makes missing tables, never missing columns: an embedded read model
    made before a nullable column was added (runs.resource, migration 0007; runs.summary,
    experiments.freshness, blocks.execution, 0008) gets it here, and an index column its
    rows' values (projections/store/backfill.py, 0011). Missing indexes are made too."""
    inspector = inspect(sync_conn)
    added = set()
    for table in metadata.sorted_tables:
        if not inspector.has_table(table.name):
            continue
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present and column.nullable:
                kind = column.type.compile(sync_conn.dialect)
                sync_conn.exec_driver_sql(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}')
                added.add((table.name, column.name))
        indexed = {index["name"] for index in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in indexed:
                index.create(sync_conn)
    for column, backfill in AFTER_ADDING.items():  # in the migrations' order, once every column is there
        if column in added:
            backfill(sync_conn)


def _add_missing_indexes(sync_conn) -> None:
    """Likewise for indexes of tables made before them (event_index's, migration 0012)."""
    for table in metadata.sorted_tables:
        for index in table.indexes:
            index.create(sync_conn, checkfirst=True)


async def prepare_schema(url: str, engine: AsyncEngine) -> None:
    """The embedded SQLite read model is created in place; PostgreSQL is migrated to head
    (safe when many replicas start at once)."""
    if url.startswith("sqlite"):
        await create_schema(engine)
    else:
        await migrate.upgrade(url)
