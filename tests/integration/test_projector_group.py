"""Two `runledger project` processes in one consumer group over a 6-partition topic and a
PostgreSQL read model. One is SIGKILLed mid-stream; the survivor takes its partitions over
from the checkpoints; the result equals a fresh replay of the whole log, counter for counter."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import types
import uuid

import pytest
from sqlalchemy import func, select

from events.kafka_log import KafkaEventLog
from events.log import Position, partition_for
from events.producer import Producer
from projections.runtime.projector import Projector
from projections.store import views
from projections.store.database import create_schema, make_engine
from projections.store.tables import dead_letters, event_index
from tests.builders import RunScript
from tests.conftest import BACKENDS, fresh_database_url
from tests.projector_process import ProjectorProcess
from tests.state_hash import state_hashes

DELIVERED = select(func.sum(func.coalesce(event_index.c.deliveries, 1)))
"""Records the index accounts for: a repeated delivery of an accepted event (the scripts
send some) has no row of its own but is counted on the first's; a record applied twice
would be counted twice."""

pytestmark = [pytest.mark.kafka, pytest.mark.skipif("kafka" not in BACKENDS, reason="needs RUNLEDGER_TEST_BACKENDS=kafka")]

RUNS, DOCS, N = 24, 4, 3


def run_events(i: int) -> tuple[RunScript, list[tuple[str, str, dict]], tuple]:
    """One run's events as a worker sends them, and the counters it must end with. Every
    4th run has a document whose passes all fail; every 3rd has a retried (duplicate) batch."""
    run_id = f"run_{i:03d}_{uuid.uuid4().hex[:6]}"
    while partition_for(run_id, 6) != i % 6:  # every partition has runs: the tests wait on each one's commits
        run_id = f"run_{i:03d}_{uuid.uuid4().hex[:6]}"
    script = RunScript(run_id=run_id, docs=DOCS, n=N)
    events = [("RunCreated", script.run_id, script.created().payload.model_dump(mode="json")),
              ("RunStarted", script.run_id, {"worker": f"w{i % 3}"})]
    failing = "doc_0" if i % 4 == 0 else None
    for doc in script.doc_ids:
        for p in range(N):
            if doc == failing:
                error = {"message": "model timeout", "code": "timeout"}
                events.append(("DocumentPassFailed", script.run_id,
                               {"document_id": doc, "pass_index": p, "attempt": 1, "error": error, "final": True}))
            else:
                output = {"category": "invoice" if (i + p) % 3 else "receipt"}
                events.append(("DocumentPassCompleted", script.run_id,
                               {"document_id": doc, "pass_index": p, "output": output, "duration_ms": 5 + p}))
    if i % 3 == 0:
        events += events[4:9]  # the worker's retry of a batch it never saw acknowledged
    expected = ("completed", DOCS, DOCS - (failing is not None), DOCS, int(failing is not None))
    return script, events, expected


async def prepare(url: str) -> None:
    """The schema as production makes it (`runledger migrate`); plain create_all on SQLite,
    or before the migrate command existed."""
    if not url.startswith("sqlite"):
        with tempfile.TemporaryDirectory() as data_dir:
            env = {**os.environ, "RUNLEDGER_DATABASE_URL": url, "RUNLEDGER_DATA_DIR": data_dir}
            migrate = subprocess.run([sys.executable, "-m", "services.cli", "migrate"], env=env,
                                     capture_output=True, text=True)
        if migrate.returncode == 0:
            return
        assert "invalid choice: 'migrate'" in migrate.stderr, migrate.stderr
    engine = make_engine(url)
    try:
        await create_schema(engine)
    finally:
        await engine.dispose()


async def checkpoints_of(engine) -> dict[int, int]:
    async with engine.connect() as conn:
        return (await views.projection_checkpoints(conn)).get("main", {})


async def until(condition, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while not (result := await condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)
    return result


async def caught_up(engine, log) -> bool:
    ends, stored = await log.end_offsets(), await checkpoints_of(engine)
    return all(stored.get(p, 0) == end for p, end in ends.items())


@pytest.mark.postgres
@pytest.mark.skipif("postgres" not in BACKENDS, reason="needs RUNLEDGER_TEST_BACKENDS=kafka,postgres")
async def test_a_killed_projector_is_replaced_and_the_result_equals_a_fresh_replay(kafka_bootstrap, request, tmp_path):
    topic, group = f"group-{uuid.uuid4().hex[:10]}", f"projectors-{uuid.uuid4().hex[:6]}"
    live_url = await fresh_database_url("postgres", request, tmp_path)
    await prepare(live_url)
    env = {"RUNLEDGER_KAFKA_BOOTSTRAP": kafka_bootstrap.bootstrap, "RUNLEDGER_DATABASE_URL": live_url,
           "RUNLEDGER_TOPIC": topic, "RUNLEDGER_PARTITIONS": "6"}
    log = KafkaEventLog(kafka_bootstrap.bootstrap, topic=topic, partitions=6)
    await log.start()
    live = make_engine(live_url)
    victim = survivor = None
    try:
        victim = ProjectorProcess("p1", env, group, tmp_path)
        survivor = ProjectorProcess("p2", env, group, tmp_path)

        async def split_between_both():
            victim.check_alive(), survivor.check_alive()
            a, b = victim.assignments(), survivor.assignments()
            return a and b and a[-1] and b[-1] and a[-1] | b[-1] == set(range(6)) and not a[-1] & b[-1]
        await until(split_between_both, 60, "both projectors to share the six partitions")

        runs = [run_events(i) for i in range(RUNS)]
        async with Producer.over_kafka(kafka_bootstrap.bootstrap, org_id="org_a", topic=topic) as producer:
            async def stream():
                for _, events, _ in runs:
                    await producer.emit_many(events)
                    await asyncio.sleep(0.15)
            streaming = asyncio.create_task(stream())

            async def victim_progressed():
                stored = await checkpoints_of(live)
                return all(stored.get(p, 0) > 0 for p in victim.assignments()[-1])
            await until(victim_progressed, 120, "the victim to commit on each of its partitions")
            assert not streaming.done(), "the kill must come mid-stream"
            victim.proc.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            victim.proc.wait()
            await streaming

        # Both, not one: the victim may have applied its partitions to the end before it
        # died, so the log can be caught up while the group has not yet rebalanced.
        async def survivor_took_over():
            survivor.check_alive()
            return survivor.assignments()[-1] == set(range(6)) and await caught_up(live, log)
        await until(survivor_took_over, 120, "the survivor to take all six partitions and apply the whole log")
        takeover = time.monotonic() - killed_at
        survivor.proc.send_signal(signal.SIGTERM)
        assert survivor.proc.wait(20) == 0
        assert "leaving the group" in survivor.text() and "projector stopped" in survivor.text()

        ends = await log.end_offsets()
        async with live.connect() as conn:
            indexed = await conn.scalar(DELIVERED)
            dead = await conn.scalar(select(func.count()).select_from(dead_letters))
            for script, _, expected in runs:
                run = await views.get_run_any(conn, script.run_id)
                counters = (run.status, run.total_document_count, run.completed_document_count,
                            run.document_count, run.error_count)
                assert counters == expected, script.run_id
        assert (indexed, dead) == (sum(ends.values()), 0)  # every record applied exactly once

        replay_url = await fresh_database_url("postgres", request, tmp_path)
        await prepare(replay_url)
        replay = make_engine(replay_url)
        try:
            projector = Projector(log, replay)
            task = asyncio.create_task(projector.run(group=f"replay-{group}"))
            await until(lambda: caught_up(replay, log), 60, "the replay to finish")
            projector.stop()
            await asyncio.wait_for(task, 15)
            assert await state_hashes(live) == await state_hashes(replay)
        finally:
            await replay.dispose()
        print(f"\n{sum(ends.values())} records; survivor caught up {takeover:.1f}s after the kill")
    finally:
        for process in (victim, survivor):
            if process:
                process.close()
        await live.dispose()
        await log.close()


@pytest.fixture
def batch_delay(monkeypatch):
    """Batches hold their transaction open for `delay` seconds before committing."""
    from projections.runtime import projector as projector_module

    real, control = projector_module.save, types.SimpleNamespace(delay=0.05)

    async def slow(conn, batch, **kwargs):
        await real(conn, batch, **kwargs)
        await asyncio.sleep(control.delay)
    monkeypatch.setattr(projector_module, "save", slow)
    return control


async def test_a_rebalance_while_a_batch_is_in_hand_loses_nothing(kafka_bootstrap, database_url, batch_delay):
    """A second member joins while the first is mid-batch: the revoke waits for that batch
    to commit, the partitions resume from the checkpoints, and nothing is applied twice."""
    topic, group = f"rebalance-{uuid.uuid4().hex[:10]}", f"g-{uuid.uuid4().hex[:6]}"
    log = KafkaEventLog(kafka_bootstrap.bootstrap, topic=topic, partitions=6)
    await log.start()
    await prepare(database_url)
    engine = make_engine(database_url)
    runs = [run_events(i) for i in range(10)]
    first, second = Projector(log, engine, batch_size=10), Projector(log, engine, batch_size=10)
    tasks = []
    try:
        async with Producer.over_log(log, org_id="org_a") as producer:
            for _, events, _ in runs:
                await producer.emit_many(events)
        ends = await log.end_offsets()
        tasks.append(asyncio.create_task(first.run(group=group)))
        await until(lambda: asyncio.sleep(0, first.batches >= 2), 30, "the first member to be busy")
        assert len(first.partitions) == 6
        # read-your-writes through the first member, also on the partitions it is about to hand over
        waits = asyncio.gather(*(first.wait(Position(p, end - 1), 45) for p, end in ends.items() if end))
        batch_delay.delay = 2.0  # the batch in hand when the group rebalances commits after it
        tasks.append(asyncio.create_task(second.run(group=group)))
        await until(lambda: asyncio.sleep(0, bool(second.partitions)), 30, "the rebalance", interval=0.02)
        batch_delay.delay = 0.05
        split = lambda: asyncio.sleep(0, len(first.partitions) == len(second.partitions) == 3)  # noqa: E731
        await until(split, 30, "the first member to resume with its half")
        assert not first.partitions.keys() & second.partitions.keys()
        await until(lambda: caught_up(engine, log), 60, "both members to apply the whole log")

        assert all(await waits)
        async with engine.connect() as conn:
            indexed = await conn.scalar(DELIVERED)
            for script, _, expected in runs:
                run = await views.get_run_any(conn, script.run_id)
                assert (run.status, run.total_document_count, run.completed_document_count,
                        run.document_count, run.error_count) == expected
        assert indexed == sum(ends.values()) == first.applied_total + second.applied_total
    finally:
        for projector in (first, second):
            projector.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 20)
        await engine.dispose()
        await log.close()
