"""What the embedded SQLite read model accepts, PostgreSQL must hold too.

SQLite ignores VARCHAR lengths and stores NUL characters; PostgreSQL refuses both. A
refusal inside the projector stops the partition (it looks like a bug), so input
that is valid on the log must fit every store alike.
"""
from __future__ import annotations

import random
import string

from sqlalchemy import select

from events import bounds
from events.codec import encode
from events.log import Message
from projections.runtime.projector import Projector
from projections.store import views
from projections.store.tables import dead_letters, document_targets
from tests.builders import RunScript
from tests.integration.test_projector import append, project_until, read_run


def incompressible(alphabet: str, n: int, seed: int) -> str:
    """Text PostgreSQL cannot shrink by compressing it inside an index entry."""
    rnd = random.Random(seed)
    return "".join(rnd.choice(alphabet) for _ in range(n))


async def test_the_longest_ids_and_target_paths_the_contract_allows_are_stored(event_log, engine):
    """A run id of 1,024 bytes, a document id of 768 and a target path of 768 make the
    largest `document_targets` primary key: it must fit one PostgreSQL b-tree entry."""
    script = RunScript(run_id=incompressible(string.ascii_letters, bounds.MAX_AGGREGATE_ID_BYTES, 1), docs=1, n=3,
                       block_type="extract")
    script.doc_ids = [incompressible("".join(map(chr, range(0x4E00, 0x4F00))), bounds.MAX_ID_BYTES // 3, 2)]
    keys = [incompressible(string.ascii_letters, bounds.MAX_KEY_CHARS, 3 + i) for i in range(3)]
    keys[2] = keys[2][: bounds.MAX_PATH_BYTES - 2 * (bounds.MAX_KEY_CHARS + 1)]
    output = {keys[0]: {keys[1]: {keys[2]: "v"}}}
    positions = await append(event_log, [script.created(), *script.all_passes(output)])
    await project_until_done(event_log, engine, positions)
    run, docs = await read_run(engine, script.run_id)
    assert run.status == "completed" and docs[0].document_id == script.doc_ids[0]
    async with engine.connect() as conn:
        [row] = await views.target_rows(conn, script.run_id)
    assert row.path == ".".join(keys) and len(row.path.encode()) == bounds.MAX_PATH_BYTES


async def test_nul_characters_in_output_values_do_not_stop_the_partition(event_log, engine):
    script = RunScript(docs=1, n=3, block_type="extract")
    output = {"a\ufffdb": "value with \x00 inside"}
    positions = await append(event_log, [script.created(), *script.all_passes(output)])
    await project_until_done(event_log, engine, positions)
    run, docs = await read_run(engine, script.run_id)
    assert run.status == "completed"
    assert docs[0].passes[0].output == output  # the state (JSON) keeps the exact value
    async with engine.connect() as conn:
        paths = (await conn.execute(select(document_targets.c.path))).scalars().all()
    assert paths == ["a\ufffdb"]


async def test_keys_that_would_meet_in_a_stored_path_are_dead_lettered(event_log, engine):
    """`a\\x00` and `a\\ufffd` would share a primary key once NUL is stored as U+FFFD: the
    contract refuses control characters in keys, so the event is poison, not a stop."""
    script = RunScript(docs=1, n=3, block_type="extract")
    created, good = script.created(), script.passed("doc_0", 0, {"a": 1})
    bad = encode(good).replace(b'{"a":1}', b'{"a\\u0000":1,"a\xef\xbf\xbd":2}')
    positions = await event_log.append([Message(created.aggregate_id, encode(created)),
                                        Message(good.aggregate_id, bad)])
    await project_until_done(event_log, engine, positions)
    async with engine.connect() as conn:
        [reason] = (await conn.execute(select(dead_letters.c.reason))).scalars().all()
    assert "control character" in reason


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
