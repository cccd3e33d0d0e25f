"""Engine construction for the read model (SQLite embedded, PostgreSQL in production)."""
from __future__ import annotations

import json

import orjson
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from . import migrate
from .tables import metadata


def make_engine(url: str, schema: str | None = None) -> AsyncEngine:
    """`schema` (PostgreSQL): a read-model version's own schema, set as the connections'
    `search_path` (projections/versions.py)."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, **JSON_CODEC)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    connect_args = {"server_settings": {"search_path": schema}} if schema else {}
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True, connect_args=connect_args,
                               **JSON_CODEC)


class JsonText(str):
    """A JSON column value serialised ahead of time (projections/writes.py, off the event
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
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


async def create_schema(engine: AsyncEngine) -> None:
    """Embedded default and tests; production schemas come from migrations."""
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)


async def prepare_schema(url: str, engine: AsyncEngine) -> None:
    """The embedded SQLite read model is created in place; PostgreSQL is migrated to head
    (safe when many replicas start at once)."""
    if url.startswith("sqlite"):
        await create_schema(engine)
    else:
        await migrate.upgrade(url)
