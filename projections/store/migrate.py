"""Schema migrations for the PostgreSQL read model: Alembic, configured in code (no alembic.ini).

`upgrade(url)` is safe to run from many processes at once (every API and projector
replica runs it at start): a PostgreSQL advisory lock makes them take turns, and
whoever comes second finds the schema at head and does nothing. The embedded
SQLite read model is created by `database.create_schema` instead.

A new migration, for developers (against a database at head)::

    python -m projections.store.migrate revision URL "add a column"
"""
from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

MIGRATIONS = Path(__file__).with_name("migrations")
LOCK_KEY = 7_237_284_010_553_745_713  # any constant bigint; one per database is enough

log = logging.getLogger("runledger.migrate")


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # configparser interpolates '%'
    return config


async def upgrade(url: str, revision: str = "head", schema: str | None = None) -> tuple[str | None, str | None]:
    """Migrate the database at `url` to `revision`, holding the migration lock.
    Returns the revisions before and after (equal when there was nothing to do).
    `schema`: a read-model version's own schema (created if missing), migrated with its
    own `alembic_version` (projections/runtime/versions.py)."""
    def work(conn):
        if schema:
            _use_schema(conn, schema)
        before = _revision_of(conn)
        command.upgrade(_bound(url, conn), revision)
        return before, _revision_of(conn)

    before, after = await _with_lock(url, work)
    if before != after:
        log.info("read model schema migrated from %s to %s", before or "nothing", after)
    return before, after


async def current_revision(url: str) -> str | None:
    return await _with_lock(url, _revision_of)


def head_revision() -> str:
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def upgrade_sql(url: str, revision: str = "head") -> None:
    """Print the DDL of an upgrade from scratch instead of running it (for a DBA to review)."""
    command.upgrade(alembic_config(url), revision, sql=True)


async def revision(url: str, message: str) -> None:
    """Autogenerate a new revision from the difference between `tables.metadata` and the database."""
    await _with_lock(url, lambda conn: command.revision(_bound(url, conn), message, autogenerate=True))


def _use_schema(connection, schema: str) -> None:
    connection.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    connection.exec_driver_sql(f'SET search_path TO "{schema}"')
    connection.commit()


def _bound(url: str, connection) -> Config:
    config = alembic_config(url)
    config.attributes["connection"] = connection
    return config


def _revision_of(connection) -> str | None:
    current = MigrationContext.configure(connection).get_current_revision()
    connection.commit()  # Alembic must find no transaction open, or it would not commit its own
    return current


async def _with_lock(url: str, work):
    # The lock belongs to the session; NullPool closes the connection on exit, which
    # releases it even if `work` fails halfway.
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                await _lock(conn)
            return await conn.run_sync(work)
    finally:
        await engine.dispose()


async def _lock(conn: AsyncConnection) -> None:
    await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": LOCK_KEY})
    await conn.commit()  # end the implicit transaction; Alembic runs its own


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] != "revision":
        print("usage: python -m projections.store.migrate revision URL MESSAGE", file=sys.stderr)
        return 2
    asyncio.run(revision(argv[1], argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
