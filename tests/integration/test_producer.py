"""The producer SDK: a worker emits a run's passes over HTTP or straight onto the log,
retries what failed, and the run still completes with exact counts."""
from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from retab import Retab

from events.codec import decode
from events.log import Position
from events.producer import InvalidEvent, Producer, ProducerError, Rejected
from projections.runtime.projector import Projector
from projections.store import views
from tests.builders import RunScript
from tests.conftest import BACKENDS
from tests.e2e.conftest import KEY, http, server_env  # noqa: F401  (server_env is a fixture)
from tests.e2e.test_sdk_scenario import setup_experiment
from tests.projector_process import ProjectorProcess
from tests.server import ServerProcess, free_port
from tests.waiting import wait_for

DOCS = [{"handle_inputs": {"doc": {"type": "json", "data": {"n": i}}}} for i in range(4)]
needs_kafka = pytest.mark.skipif("kafka" not in BACKENDS, reason="RUNLEDGER_TEST_BACKENDS has no kafka")


def passes(run_id: str, doc_ids: list[str], n: int = 3) -> list[tuple[str, str, dict]]:
    return [("DocumentPassCompleted", run_id, {"document_id": d, "pass_index": i, "output": {"category": "invoice"}})
            for d in doc_ids for i in range(n)]


async def wait_for_run(fetch, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        run = await fetch()
        if run is not None and run.status in ("completed", "error") or time.monotonic() > deadline:
            return run
        await asyncio.sleep(0.1)


# -- over HTTP, against a live server -------------------------------------------------

@pytest.fixture
def server(server_env, tmp_path):  # noqa: F811
    """On Kafka, the production shape: an API-only server and a separate projector process."""
    projector = None
    try:
        with ServerProcess(tmp_path / "server", server_env) as process:
            if "RUNLEDGER_KAFKA_BOOTSTRAP" in server_env:
                projector = ProjectorProcess("projector", server_env, f"g-{uuid.uuid4().hex[:8]}", tmp_path)
            yield process
        if projector:
            assert projector.stop() == 0, projector.text()[-2000:]
    finally:
        if projector:
            projector.close()


async def test_a_worker_emits_a_run_over_http_and_retried_batches_count_once(server):
    sdk = Retab(api_key=KEY, base_url=server.url, max_retries=0)
    experiment = setup_experiment(server, sdk, documents=DOCS, n=3)
    run = sdk.workflows.experiments.runs.create(experiment_id=experiment.id)
    doc_ids = [r.document_id for r in sdk.workflows.experiments.results.list(run_id=run.id).data]

    async with Producer.over_http(server.url, KEY, producer="worker-1", max_batch=5) as producer:
        started = await producer.run_started(run.id, worker="worker-1")
        positions = await producer.emit_many(passes(run.id, doc_ids))  # 12 events, 3 requests
        assert len(positions) == 12 and all(isinstance(p, Position) for p in positions)
        assert {p.partition for p in positions} == {started.partition}  # one run, one partition
        assert [p.offset for p in positions] == sorted(p.offset for p in positions)
        await producer.emit_many(passes(run.id, doc_ids)[4:9])  # the worker retried a batch

        with pytest.raises(Rejected) as rejected:
            await producer.run_started("run_that_does_not_exist")
        assert rejected.value.status == 404 and rejected.value.detail["code"] == "run_not_found"

    done = await asyncio.to_thread(
        lambda: wait_for(lambda: sdk.workflows.experiments.runs.get(run.id), lambda r: r.lifecycle.status == "completed"))
    assert (done.total_document_count, done.completed_document_count, done.document_count, done.error_count) == (4, 4, 4, 0)
    history = http(server).get(f"/v1/workflows/experiments/runs/{run.id}/events",
                               params={"order": "asc", "limit": 1000}).json()["data"]
    accepted = [h for h in history if h["type"] == "DocumentPassCompleted" and h["status"] == "accepted"]
    # The retried batch: answered at the door, or counted on its events' rows (issue 17).
    assert len(accepted) == 12 and sum(h["status"] == "rejected" for h in history) == 0
    assert {h["producer"] for h in accepted} == {"http:default"}  # the server stamps who sent it


async def test_invalid_input_raises_before_anything_is_sent():
    nowhere = f"http://127.0.0.1:{free_port()}"  # a send would fail with a connection error
    async with Producer.over_http(nowhere, KEY, retries=0) as producer:
        with pytest.raises(InvalidEvent, match="pass_index"):
            await producer.pass_completed("run_1", "doc_0", -1, {"category": "x"})
        with pytest.raises(InvalidEvent, match="unknown event type"):
            await producer.emit("DocumentPassExploded", "run_1", {})
        with pytest.raises(InvalidEvent, match="not a run event"):
            await producer.emit("ExperimentDeleted", "exp_1", {})
        with pytest.raises(InvalidEvent, match=r"events\[1\].*error"):
            await producer.emit_many([*passes("run_1", ["doc_0"], 1),
                                      ("DocumentPassFailed", "run_1", {"document_id": "doc_0", "pass_index": 1})])
        with pytest.raises(ProducerError, match="giving up"):  # valid input does reach the wire
            await producer.run_started("run_1")


# -- straight onto the log ------------------------------------------------------------

class LostAcks:
    """Wraps a log: the first `failures` appends reach the log but the ack is lost."""

    def __init__(self, log, failures: int):
        self.log, self.failures, self.calls = log, failures, 0

    def __getattr__(self, name):
        return getattr(self.log, name)

    async def append(self, messages):
        self.calls += 1
        positions = await self.log.append(messages)
        if self.calls <= self.failures:
            raise ConnectionError("simulated: connection dropped before the ack")
        return positions


async def test_lost_acks_are_retried_and_the_duplicates_count_once(event_log, engine):
    script = RunScript(run_id=f"run_{uuid.uuid4().hex[:8]}", docs=5, n=3)
    flaky = LostAcks(event_log, failures=2)
    producer = Producer.over_log(flaky, org_id="org_a", producer="worker-7", max_batch=4)
    producer.backoff_base = 0.01
    async with producer:
        await producer.emit("RunCreated", script.run_id, script.created().payload.model_dump(mode="json"))
        await producer.run_started(script.run_id, worker="worker-7")
        positions = await producer.emit_many(passes(script.run_id, script.doc_ids))
    assert flaky.calls == 2 + 1 + 1 + 4  # two lost acks retried, then one call per batch of 4

    projector = Projector(event_log, engine)
    task = asyncio.create_task(projector.run())
    try:
        assert await projector.wait(positions[-1], 30)
    finally:
        projector.stop()
        await asyncio.wait_for(task, 15)
    async with engine.connect() as conn:
        run = await views.get_run_any(conn, script.run_id)
    assert (run.status, run.total_document_count, run.completed_document_count, run.document_count,
            run.error_count) == ("completed", 5, 5, 5, 0)
    on_log = await event_log.read(positions[0].partition, 0, 1000)
    ids = [decode(r.value).event_id for r in on_log if r.key == script.run_id]
    assert len(ids) == 2 + 15 + 2 and len(set(ids)) == 17  # the resent events are the same events


# -- straight to Kafka -----------------------------------------------------------------

@needs_kafka
@pytest.mark.kafka
async def test_over_kafka_creates_the_topic_and_event_ids_are_deterministic(kafka_bootstrap):
    from events.kafka_log import KafkaEventLog

    topic = f"producer-{uuid.uuid4().hex[:10]}"
    async with Producer.over_kafka(kafka_bootstrap.bootstrap, org_id="org_k", topic=topic, partitions=3) as producer:
        position = await producer.pass_completed("run_k", "doc_0", 1, {"category": "receipt"}, duration_ms=12)
        again = await producer.pass_completed("run_k", "doc_0", 1, {"category": "receipt"}, duration_ms=12)
        failed = await producer.pass_failed("run_k", "doc_1", 0, attempt=2, message="timeout", final=False)
    log = KafkaEventLog(kafka_bootstrap.bootstrap, topic=topic, partitions=6)
    await log.start()
    try:
        assert log.partitions == 3  # adopted, not recreated
        records = await log.read(position.partition, 0, 10)
    finally:
        await log.close()
    assert [r.offset for r in records] == [position.offset, again.offset, failed.offset]
    first, second, third = (decode(r.value) for r in records)
    assert first.event_id == second.event_id and first.org_id == "org_k" and first.producer == "sdk"
    assert third.payload.attempt == 2 and third.payload.final is False


@needs_kafka
@pytest.mark.kafka
async def test_an_append_refused_for_its_sequence_numbers_lands_through_a_new_producer(kafka_bootstrap):
    """The idempotent producer's sequence numbers can fall out of step with the broker's: aiokafka
    fails a batch whose partition had no leader for longer than its timeout (a broker restart)
    after counting the batch's numbers. From then on the broker refuses every batch to that
    partition. The log starts a new
    producer and the append lands, once, in order; later appends land too."""
    from aiokafka import TopicPartition

    from events.kafka_log import KafkaEventLog
    from events.log import Message

    topic = f"out-of-step-{uuid.uuid4().hex[:10]}"
    log = KafkaEventLog(kafka_bootstrap.bootstrap, topic=topic, partitions=1)
    await log.start()
    try:
        await log.append([Message("run_a", b"1")])
        # The state aiokafka leaves behind: numbers counted for a batch the broker never got.
        log._producer._txn_manager.increment_sequence_number(TopicPartition(topic, 0), 3)
        await log.append([Message("run_a", b"2"), Message("run_b", b"3")])
        await log.append([Message("run_a", b"4")])
        assert log.producers_replaced == 1
        assert [r.value for r in await log.read(0, 0)] == [b"1", b"2", b"3", b"4"]

        # Appends in flight together when it happens: one new producer, each lands once.
        log._producer._txn_manager.increment_sequence_number(TopicPartition(topic, 0), 3)
        together = [[Message(f"run_{i}", f"{i}{j}".encode()) for j in range(3)] for i in range(5)]
        await asyncio.gather(*(log.append(messages) for messages in together))
        assert log.producers_replaced == 2
        landed = sorted(r.value for r in await log.read(0, 4, 100))
        assert landed == sorted(m.value for messages in together for m in messages)
    finally:
        await log.close()


@needs_kafka
@pytest.mark.kafka
async def test_a_broker_restart_mid_stream_loses_nothing(kafka_bootstrap, tmp_path):
    """Producers keep emitting while the broker restarts; every event ends up on the log
    once by identity, and the projected runs have exact counts."""
    from events.kafka_log import KafkaEventLog
    from projections.store.database import create_schema, make_engine

    topic = f"restart-{uuid.uuid4().hex[:10]}"
    scripts = [RunScript(run_id=f"run_{i}_{uuid.uuid4().hex[:6]}", docs=5, n=3) for i in range(6)]
    producer = Producer.over_kafka(kafka_bootstrap.bootstrap, org_id="org_a", topic=topic, retries=8)
    emitted: dict[str, Position] = {}
    broker_down = False
    emitted_while_down = 0

    async def worker(script: RunScript) -> None:
        nonlocal emitted_while_down
        created = script.created()
        await producer.emit("RunCreated", script.run_id, created.payload.model_dump(mode="json"))
        for doc in script.doc_ids:
            batch, during_restart = passes(script.run_id, [doc]), broker_down
            for event, position in zip(batch, await producer.emit_many(batch)):
                emitted[str(producer.build(*event).event_id)] = position
            emitted_while_down += during_restart
            await asyncio.sleep(0.5)

    async with producer:
        workers = asyncio.gather(*(worker(s) for s in scripts))
        await asyncio.sleep(0.3)
        broker_down = True
        await asyncio.to_thread(kafka_bootstrap.restart)
        broker_down = False
        await workers
        replaced = producer._transport.log.producers_replaced
    assert len(emitted) == 6 * 5 * 3
    assert emitted_while_down > 0, "no emit was made while the broker restarted"

    log = KafkaEventLog(kafka_bootstrap.bootstrap, topic=topic)
    await log.start()
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'readmodel.db'}")
    await create_schema(engine)
    try:
        ends = await log.end_offsets()
        on_log = {}
        for partition, end in ends.items():
            for record in await log.read(partition, 0, end):
                on_log.setdefault(str(decode(record.value).event_id), record.position)
        assert set(emitted) <= set(on_log), "events acknowledged before or during the restart are on the log"
        assert all(on_log[event_id] <= position for event_id, position in emitted.items())

        projector = Projector(log, engine)
        task = asyncio.create_task(projector.run(group=f"g-{topic}"))
        try:
            for partition, end in ends.items():
                if end:
                    assert await projector.wait(Position(partition, end - 1), 60)
        finally:
            projector.stop()
            await asyncio.wait_for(task, 15)
        async with engine.connect() as conn:
            for script in scripts:
                run = await views.get_run_any(conn, script.run_id)
                assert (run.status, run.completed_document_count, run.document_count) == ("completed", 5, 5)
    finally:
        await log.close()
        await engine.dispose()
    print(f"\n{emitted_while_down} emits made while the broker restarted; "
          f"{sum(ends.values())} records for {len(emitted)} passes and {len(scripts)} runs; "
          f"the producer was replaced {replaced} times")
