"""Alembic environment for the read model, configured in code by `projections.store.migrate`.

Online runs use the connection `projections.store.migrate` hands in (it holds the
advisory lock), or else an async engine built from `sqlalchemy.url`. Offline
(`--sql`) runs print the DDL instead.
"""
from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import TypeDecorator
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from projections.store.control import metadata as control_metadata
from projections.store.tables import metadata as read_model_metadata

metadata = [read_model_metadata, control_metadata]  # the control store shares PostgreSQL's database

config = context.config


def render_item(kind: str, obj, autogen_context):
    """Migrations stay frozen in time: our own column types are written as the plain ones under them."""
    if kind == "type" and isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl_instance!r}"
    return False


def run_on(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True,
                      render_item=render_item)
    with context.begin_transaction():
        context.run_migrations()


async def run_with_own_engine(url: str) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_on)
    finally:
        await engine.dispose()


def run_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
elif (handed_in := config.attributes.get("connection")) is not None:
    run_on(handed_in)
else:
    asyncio.run(run_with_own_engine(config.get_main_option("sqlalchemy.url")))
