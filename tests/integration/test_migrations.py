"""PostgreSQL's read model comes from migrations; they must build exactly `tables.metadata`."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, inspect, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from projections.store import control, migrate
from projections.store.tables import checkpoints, metadata, runs
from tests.conftest import BACKENDS, fresh_database_url

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif("postgres" not in BACKENDS, reason="PostgreSQL only: set RUNLEDGER_TEST_BACKENDS=embedded,postgres"),
]


@pytest.fixture
async def empty_database(request, tmp_path):
    return await fresh_database_url("postgres", request, tmp_path)


async def schema_differences(url: str) -> list:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            def compare(sync_conn):
                context = MigrationContext.configure(sync_conn, opts={"compare_type": True,
                                                                      "compare_server_default": True})
                return compare_metadata(context, [metadata, control.metadata])
            return await conn.run_sync(compare)
    finally:
        await engine.dispose()


async def test_the_migrated_schema_is_exactly_the_tables_of_the_read_model(empty_database):
    assert await migrate.upgrade(empty_database) == (None, migrate.head_revision())
    assert await schema_differences(empty_database) == []


async def test_a_second_upgrade_changes_nothing(empty_database):
    await migrate.upgrade(empty_database)
    engine = create_async_engine(empty_database)
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(checkpoints).values(projection="main", partition=0, next_offset=7))
        head = migrate.head_revision()
        assert await migrate.upgrade(empty_database) == (head, head)
        async with engine.connect() as conn:
            assert (await conn.execute(select(checkpoints.c.next_offset))).scalars().all() == [7]
    finally:
        await engine.dispose()


async def test_replicas_starting_together_migrate_once(empty_database):
    results = await asyncio.gather(*(migrate.upgrade(empty_database) for _ in range(4)))
    head = migrate.head_revision()
    assert results.count((None, head)) == 1 and results.count((head, head)) == 3  # one migrated, three waited
    assert await migrate.current_revision(empty_database) == head


def test_runledger_migrate_upgrades_then_finds_nothing_to_do(empty_database, tmp_path):
    env = {**os.environ, "RUNLEDGER_DATABASE_URL": empty_database, "RUNLEDGER_DATA_DIR": str(tmp_path)}

    def migrate_cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "services.cli", "migrate", *args], env=env,
                              capture_output=True, text=True, timeout=120, check=True)
        return done.stdout + done.stderr

    head = migrate.head_revision()
    first = migrate_cli()
    assert f"migrated from nothing to {head}" in first and f"at revision {head}" in first
    second = migrate_cli()
    assert "migrated" not in second and f"at revision {head}" in second
    assert "CREATE TABLE runs" in migrate_cli("--sql")


async def test_a_downgrade_from_0016_leaves_summaries_the_code_before_it_reads(empty_database):
    """0016 moved the filenames out of `runs.summary`; the code at 0015 reads them there,
    and renders a NULL summary from the run's state: the downgrade empties the summaries."""
    await migrate.upgrade(empty_database)
    engine = create_async_engine(empty_database)
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(runs).values(
                run_id="run_1", org_id="org_a", experiment_id="exp_1", workflow_id="wf_1", block_id="b1",
                trigger_type="api", status="running", created_at=datetime(2026, 12, 6), state={},
                summary='{"run_id":"run_1"}', filenames='{"doc_0":"a.pdf"}'))
        await migrate._with_lock(empty_database, lambda conn: command.downgrade(migrate._bound(empty_database, conn),
                                                                                "0015"))
        assert await migrate.current_revision(empty_database) == "0015"
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT summary FROM runs"))).scalars().all() == [None]
            assert "filenames" not in {c["name"] for c in await conn.run_sync(
                lambda sync: inspect(sync).get_columns("runs"))}
        assert await migrate.upgrade(empty_database) == ("0015", migrate.head_revision())
    finally:
        await engine.dispose()
