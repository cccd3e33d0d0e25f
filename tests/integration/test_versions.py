"""Read-model versions on each backend: where a version lives, the pointer, drop, and a
follower that moves reads and its projector to a new version without going back."""
from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from projections.runtime import versions
from projections.runtime.follow import ActiveReadModel
from projections.runtime.projector import Projector
from projections.store import control
from projections.store.database import make_engine, prepare_schema
from projections.store.tables import runs
from tests.builders import RunScript
from tests.integration.test_projector import append, project_until


@pytest.fixture
async def control_engine(database_url, tmp_path):
    url = database_url if not database_url.startswith("sqlite") else f"sqlite+aiosqlite:///{tmp_path / 'control.db'}"
    engine = make_engine(url)
    if url.startswith("sqlite"):
        await control.create_control_schema(engine)
    else:
        await prepare_schema(url, engine)  # migrations make the control tables too
    yield engine
    await engine.dispose()


async def test_a_version_is_built_activated_and_dropped(database_url, control_engine, event_log):
    assert await versions.active_version(control_engine) == 1
    location = await versions.create_version(control_engine, database_url)
    assert location.version == 2
    with pytest.raises(versions.VersionError, match="being built"):
        await versions.create_version(control_engine, database_url)

    engine = versions.open_engine(location)
    try:
        await versions.prepare(location, engine)
        script = RunScript(run_id="run_v2")
        await project_until(Projector(event_log, engine), await append(event_log, [script.created()]))
        async with engine.connect() as conn:
            assert await conn.scalar(select(runs.c.run_id)) == "run_v2"
    finally:
        await engine.dispose()
    assert await versions.activate(control_engine, 2) == 1
    listed = [(v.version, v.status) for v in await versions.list_versions(control_engine)]
    assert listed == [(1, "retired"), (2, "active")]

    with pytest.raises(versions.VersionError, match="active"):
        await versions.drop(control_engine, database_url, 2)
    await versions.drop(control_engine, database_url, 1)
    assert [v.status for v in await versions.list_versions(control_engine)] == ["dropped", "active"]
    engine = versions.open_engine(location)  # version 2 is untouched by dropping 1
    try:
        async with engine.connect() as conn:
            assert await conn.scalar(select(runs.c.run_id)) == "run_v2"
    finally:
        await engine.dispose()


async def test_a_follower_switches_reads_and_projector_together(database_url, control_engine, event_log):
    base = make_engine(database_url)
    await prepare_schema(database_url, base)
    follower = await ActiveReadModel(database_url, control_engine, settle=0.1).open(base)
    live = Projector(event_log, follower.engine)
    running = asyncio.create_task(live.run())
    try:
        for position in await append(event_log, [RunScript(run_id="run_before").created()]):
            assert await live.wait(position, 30)

        location = await versions.create_version(control_engine, database_url)
        rebuilt = versions.open_engine(location)
        await versions.prepare(location, rebuilt)
        positions = await append(event_log, [RunScript(run_id="run_during").created()])
        replay = Projector(event_log, rebuilt)  # as a rebuild replays: every partition, no group
        replaying = asyncio.create_task(replay.run(partitions=list(range(event_log.partitions))))
        for position in positions:
            assert await replay.wait(position, 30)
        replay.stop()
        await asyncio.wait_for(replaying, 30)
        await versions.activate(control_engine, location.version)

        await follower.switch(location.version, live)  # the live projector keeps running
        assert follower.version == 2 and live.engine is follower.engine
        for position in await append(event_log, [RunScript(run_id="run_after").created()]):
            assert await live.wait(position, 30)
        async with follower.engine.connect() as conn:
            ids = set((await conn.execute(select(runs.c.run_id))).scalars())
        assert ids == {"run_before", "run_during", "run_after"}
    finally:
        live.stop()
        await asyncio.wait_for(running, 30)
        await rebuilt.dispose()
        await follower.close()
        await base.dispose()
