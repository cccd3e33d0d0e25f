"""Transient faults never stop a partition, on the production backends: PostgreSQL
restarted while the projector holds a batch's write transaction open, and the Kafka
broker restarted mid-stream. Each ends with every counter as the workload says and
the read model equal to a clean replay's."""
from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from events.kafka_log import KafkaEventLog
from events.sqlite_log import SqliteEventLog
from projections.runtime import projector as projector_module
from projections.runtime.projector import Projector
from projections.store.database import make_engine, prepare_schema
from tests.conftest import BACKENDS, new_postgres_database
from tests.server import create_key
from tests.fault.workload import Workload, append, assert_survived
from tests.infra import kafka_broker, postgres_server, restart_postgres
from tests.server import ServerProcess

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def own_postgres(tmp_path_factory):
    """A server of this module's own: restarting the session's would break other tests."""
    directory = tmp_path_factory.mktemp("pg_restart")
    with postgres_server(directory) as url:
        yield directory, url


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory):
    with kafka_broker(tmp_path_factory.mktemp("kafka_restart")) as broker:
        yield broker


async def migrated(url: str):
    engine = make_engine(url)
    await prepare_schema(url, engine)
    return engine


@pytest.mark.postgres
@pytest.mark.skipif("postgres" not in BACKENDS, reason="needs RUNLEDGER_TEST_BACKENDS=postgres")
async def test_postgres_restarted_inside_a_batch_stops_nothing(own_postgres, tmp_path, monkeypatch):
    directory, url = own_postgres
    live, replay = await migrated(await new_postgres_database(url)), await migrated(await new_postgres_database(url))
    log = SqliteEventLog(tmp_path / "log.db", partitions=3)
    await log.start()
    inside, resume, armed = asyncio.Event(), asyncio.Event(), [False]
    real_save = projector_module.save

    async def held_save(conn, batch, **kwargs):
        """Hold one batch's write transaction open while the server restarts under it."""
        if armed[0]:
            armed[0] = False
            inside.set()
            await resume.wait()
        return await real_save(conn, batch, **kwargs)

    monkeypatch.setattr(projector_module, "save", held_save)
    workload = Workload.build(tag="pg")
    projector = Projector(log, live, batch_size=5)
    task = asyncio.create_task(projector.run())
    try:
        first = await append(log, workload.first)
        for position in first:
            assert await projector.wait(position, 30)
        armed[0] = True
        second = await append(log, workload.second)
        await asyncio.wait_for(inside.wait(), 30)
        await asyncio.to_thread(restart_postgres, directory)
        resume.set()
        for position in second:
            assert await projector.wait(position, 120), f"the projector did not get past {position}"
        assert projector.transient_total >= 1
        assert all(s.stopped is None for s in projector.partitions.values())
    finally:
        projector.stop()
        await asyncio.wait_for(task, 60)
    await assert_survived(log, live, replay, workload, first + second)


async def append_through_the_restart(log, events, timeout: float = 120):
    """A producer retries until the broker is back (appends are idempotent per event)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await append(log, events)
        except Exception:  # noqa: BLE001 - the broker is still coming back
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.5)


@pytest.mark.kafka
@pytest.mark.skipif("kafka" not in BACKENDS, reason="needs RUNLEDGER_TEST_BACKENDS=kafka")
async def test_the_kafka_broker_restarted_mid_stream_stops_nothing(own_broker, tmp_path):
    log = KafkaEventLog(own_broker.bootstrap, topic=f"restart-{uuid.uuid4().hex[:12]}", partitions=3)
    await log.start()
    live = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'live.db'}")
    replay = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'replay.db'}")
    for engine, name in ((live, "live.db"), (replay, "replay.db")):
        await prepare_schema(f"sqlite+aiosqlite:///{tmp_path / name}", engine)
    workload = Workload.build(tag="kr")
    projector = Projector(log, live, batch_size=5)
    task = asyncio.create_task(projector.run(group=f"g-{uuid.uuid4().hex[:8]}"))
    try:
        first = await append(log, workload.first)
        for position in first:
            assert await projector.wait(position, 60)
        await asyncio.to_thread(own_broker.restart)
        second = await append_through_the_restart(log, workload.second)
        for position in second:
            assert await projector.wait(position, 180), f"the projector did not get past {position}"
        assert all(s.stopped is None for s in projector.partitions.values())
        assert not task.done()
    finally:
        projector.stop()
        await asyncio.wait_for(task, 60)
    await assert_survived(log, live, replay, workload, first + second)


@pytest.mark.postgres
@pytest.mark.skipif("postgres" not in BACKENDS, reason="needs RUNLEDGER_TEST_BACKENDS=postgres")
async def test_reads_across_a_postgres_restart_never_answer_500(own_postgres, tmp_path):
    """Reads keep no pre-ping (projections/store/database.py): a connection the restart killed
    fails the statement that finds it dead. That read answers 503 with Retry-After (the
    pool is invalidated, so the retry connects afresh), never a 500, and reads recover."""
    directory, url = own_postgres
    database = await new_postgres_database(url)
    server = ServerProcess(tmp_path / "srv", env={"RUNLEDGER_DATABASE_URL": database}).start()
    try:
        key = create_key(server, "org_restart")
        with httpx.Client(base_url=server.url, headers={"Api-Key": key}, timeout=30) as client:
            path = "/v1/workflows/experiments/runs"
            for _ in range(8):  # several pooled connections, all killed by the restart
                assert client.get(path).status_code == 200
            await asyncio.to_thread(restart_postgres, directory)
            statuses = []
            for _ in range(40):
                answer = client.get(path)
                statuses.append(answer.status_code)
                if answer.status_code == 503:
                    assert answer.headers.get("retry-after") and answer.json()["detail"]["code"] == "unavailable"
                elif answer.status_code == 200 and statuses.count(200) >= 5:
                    break
            assert set(statuses) <= {200, 503}, statuses
            assert statuses[-5:] == [200] * 5, statuses
    finally:
        server.stop()
