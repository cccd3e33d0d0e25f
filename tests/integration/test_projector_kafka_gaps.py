"""Offsets are increasing, not contiguous: on the real broker, an outside transactional
producer leaves transaction markers and aborted records in the topic. The projector
(reading read_committed) never projects an aborted record, steps over the gaps, and
the partition keeps going."""
from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select

from events.codec import encode
from events.kafka_log import KafkaEventLog
from events.log import Message, partition_for
from projections.runtime.projector import Projector
from projections.store import views
from projections.store.tables import event_index
from tests.builders import RunScript
from tests.conftest import BACKENDS
from tests.integration.test_projector import project_until

pytestmark = [pytest.mark.kafka, pytest.mark.skipif("kafka" not in BACKENDS, reason="needs RUNLEDGER_TEST_BACKENDS=kafka")]


async def transaction(bootstrap: str, topic: str, partition: int, events, commit: bool) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"outside-{uuid.uuid4().hex[:8]}",
                                enable_idempotence=True)
    await producer.start()
    try:
        await producer.begin_transaction()
        for event in events:
            await producer.send_and_wait(topic, encode(event), key=event.aggregate_id.encode(), partition=partition)
        if commit:
            await producer.commit_transaction()
        else:
            await producer.abort_transaction()
    finally:
        await producer.stop()


async def test_aborted_records_are_never_projected_and_gaps_are_stepped_over(kafka_bootstrap, engine):
    log = KafkaEventLog(kafka_bootstrap.bootstrap, topic=f"gaps-{uuid.uuid4().hex[:12]}", partitions=3)
    await log.start()
    try:
        script = RunScript(run_id="run_gaps", docs=2, n=3)
        partition = partition_for(script.run_id, log.partitions)
        d0 = [script.passed("doc_0", i) for i in range(3)]
        d1 = [script.passed("doc_1", i, output={"category": "receipt"}) for i in range(3)]
        await log.append([Message(script.run_id, encode(script.created()))])
        await transaction(log.bootstrap, log.topic, partition, d0, commit=False)  # aborted: never happened
        await log.append([Message(script.run_id, encode(d0[0]))])
        await transaction(log.bootstrap, log.topic, partition, d0[1:], commit=True)
        await transaction(log.bootstrap, log.topic, partition, d1, commit=False)
        last = await log.append([Message(script.run_id, encode(e)) for e in d1])

        projector = Projector(log, engine)
        await project_until(projector, last[-1:])
        async with engine.connect() as conn:
            run = await views.get_run_any(conn, script.run_id)
            indexed = await conn.scalar(select(func.count()).select_from(event_index))
            offsets = list((await conn.execute(select(event_index.c.offset).order_by(event_index.c.offset))).scalars())
        assert run.status == "completed" and run.completed_document_count == 2
        assert indexed == 1 + 3 + 3  # created, doc_0's three committed passes, doc_1's plain appends
        assert offsets[-1] == last[-1].offset and offsets != list(range(offsets[0], offsets[0] + indexed))

        more = await log.append([Message(script.run_id, encode(script.cancel()))])  # and it keeps going
        await project_until(Projector(log, engine), more)
        async with engine.connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(event_index)) == indexed + 1
    finally:
        await log.close()
