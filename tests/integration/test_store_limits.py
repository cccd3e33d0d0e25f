"""What the embedded SQLite read model accepts, PostgreSQL must hold too.

SQLite ignores VARCHAR lengths and stores NUL characters; PostgreSQL refuses both. A
refusal inside the projector stops the partition (it looks like a bug), so input
that is valid on the log must fit every store alike.
"""
from __future__ import annotations

from sqlalchemy import select

from events.codec import encode
from events.log import Message
from projections import views
from projections.projector import Projector
from projections.tables import dead_letters, document_targets
from tests.builders import RunScript
from tests.integration.test_projector import append, project_until, read_run


async def test_the_longest_ids_and_long_target_paths_are_stored(event_log, engine):
    """The event contract allows ids up to 256 characters (aggregate ids up to 1024);
    output keys, which become target paths, are not bounded."""
    script = RunScript(run_id="run_" + "r" * 1020, docs=1, n=3, block_type="extract")
    script.doc_ids = ["doc_" + "d" * 252]
    output = {"k" * 600: "v"}
    positions = await append(event_log, [script.created(), *script.all_passes(output)])
    await project_until_done(event_log, engine, positions)
    run, docs = await read_run(engine, script.run_id)
    assert run.status == "completed" and docs[0].document_id == script.doc_ids[0]
    async with engine.connect() as conn:
        [row] = await views.target_rows(conn, script.run_id)
    assert row.path == "k" * 600


async def test_nul_characters_in_outputs_do_not_stop_the_partition(event_log, engine):
    script = RunScript(docs=1, n=3, block_type="extract")
    output = {"a\x00b": "value with \x00 inside"}
    positions = await append(event_log, [script.created(), *script.all_passes(output)])
    await project_until_done(event_log, engine, positions)
    run, docs = await read_run(engine, script.run_id)
    assert run.status == "completed"
    assert docs[0].passes[0].output == output  # the state (JSON) keeps the exact value
    async with engine.connect() as conn:
        paths = (await conn.execute(select(document_targets.c.path))).scalars().all()
    assert paths == ["a\ufffdb"]  # a text column cannot hold NUL on PostgreSQL


async def test_poison_under_a_key_with_nul_is_dead_lettered(event_log, engine):
    script = RunScript(docs=1, n=3)
    created = script.created()
    positions = await event_log.append([Message("bad\x00key", b"\x00 not json"), Message(created.aggregate_id,
                                                                                          encode(created))])
    await project_until_done(event_log, engine, positions)
    async with engine.connect() as conn:
        [(key, reason)] = (await conn.execute(select(dead_letters.c.key, dead_letters.c.reason))).all()
    assert key == "bad\ufffdkey" and "not JSON" in reason


async def project_until_done(log, engine, positions):
    projector = Projector(log, engine)
    await project_until(projector, positions)
    assert not [s.stopped for s in projector.partitions.values() if s.stopped]
