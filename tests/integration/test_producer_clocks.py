"""A producer's clock cannot move a run's timing beyond the log's own clock nor before
the run's creation, on every log and store; the event index keeps events as timed (a
rejected one's body, read back from the log, too), so refolds from it agree."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from sqlalchemy import select

from events.codec import from_dict
from projections.domain.fold import apply
from projections.runtime.event_bodies import with_bodies
from projections.runtime.projector import Projector
from projections.store import views
from projections.store.history import history_page
from projections.store.pagination import PageRequest
from projections.store.tables import event_index
from tests.builders import RunScript
from tests.integration.test_projector import append, project_until, read_run


async def test_stamps_from_2001_and_an_hour_ahead_are_bounded_by_the_runs_creation_and_the_append_time(
        event_log, engine):
    now = datetime.now(timezone.utc)
    before = now.replace(microsecond=now.microsecond // 1000 * 1000)  # logs stamp milliseconds
    script = RunScript(run_id="run_clocks", docs=1, n=3)
    ancient = datetime(2001, 1, 1, tzinfo=timezone.utc)
    created = script.event(script.created().payload, occurred_at=before)
    passes = [script.passed("doc_0", 0, at=ancient),
              script.passed("doc_0", 1, at=before + timedelta(hours=1)),
              script.passed("doc_0", 2, at=before),
              script.passed("doc_9", 0, at=ancient)]  # an unknown document: rejected
    positions = await append(event_log, [created, *passes])
    await project_until(Projector(event_log, engine), positions)
    after = datetime.now(timezone.utc)

    run, _ = await read_run(engine, script.run_id)
    assert run.status == "completed"
    assert before <= run.created_at <= run.started_at and run.completed_at <= after  # nothing in the future
    assert run.duration_ms <= (after - run.created_at) // timedelta(milliseconds=1)  # its wall time, not 25 years

    async with engine.connect() as conn:
        rows = (await conn.execute(select(event_index.c.accepted, event_index.c.reason)
                                   .where(event_index.c.aggregate_id == script.run_id)
                                   .order_by(event_index.c.offset))).all()
        bodies = [row.body for row in await views.run_events_until(conn, script.run_id) if row.accepted]
        history = (await history_page(conn, script.run_id, positions[0].partition,
                                      PageRequest(10, "asc", None, None))).rows
        rejected = [SimpleNamespace(**row._mapping, body=None) for row in history if not row.accepted]
    assert [accepted for accepted, _ in rows] == [True] * 4 + [False]
    notes = [reason for accepted, reason in rows if accepted and reason]
    assert len(notes) == 2 and all("producer clock" in n for n in notes)
    assert "before its run's creation" in notes[0]
    rejected_body = (await with_bodies(event_log, rejected))[-1][1]  # read back from the log
    assert datetime.fromisoformat(rejected_body["occurred_at"]) == run.created_at

    refolded = None  # what `as_of` and every audit refold do: the index's events, no append times
    for body in bodies:
        refolded = apply(refolded, from_dict(body)).state
    assert (refolded.started_at, refolded.completed_at, refolded.status) == (run.started_at, run.completed_at,
                                                                             run.status)


async def test_a_kafka_topic_is_created_with_the_brokers_append_time(event_log):
    if type(event_log).__name__ != "KafkaEventLog":
        return  # the embedded log always stamps at append
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=event_log.bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, event_log.topic)])
    finally:
        await admin.close()
    configs = {entry[0]: entry[1] for resource in response.resources for entry in resource[4]}
    assert configs["message.timestamp.type"] == "LogAppendTime"
