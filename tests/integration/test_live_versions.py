"""The versions the projector keeps for live pages and caches (projections/store/row_versions.py):
a run's version moves at every write of its row, its changed documents carry that version,
its pass count is kept as the documents' passes add up, and an organisation's version moves
only when something of that organisation changed; none of it enters the state hash."""
from __future__ import annotations

import dataclasses

from sqlalchemy import select

from projections.runtime import changes
from projections.runtime.batch import save
from projections.store import row_versions
from projections.store.tables import run_documents, runs
from tests.builders import RunScript
from tests.integration.test_projector_writes import as_records, folded
from tests.state_hash import state_hashes


async def write(engine, events, first_offset: int, partition: int = 0):
    records = [dataclasses.replace(r, partition=partition) for r in as_records(events, first_offset)]
    batch = await folded(engine, records)
    async with engine.begin() as conn:
        await save(conn, batch)
    return batch


async def run_row(engine, run_id: str):
    async with engine.connect() as conn:
        run = (await conn.execute(select(runs.c.version, runs.c.passes).where(runs.c.run_id == run_id))).one()
        docs = dict((await conn.execute(select(run_documents.c.document_id, run_documents.c.version)
                                        .where(run_documents.c.run_id == run_id))).all())
    return run.version, run.passes, docs


async def org_version(engine, org_id: str) -> int:
    async with engine.connect() as conn:
        return await row_versions.org_version(conn, org_id)


async def test_versions_move_with_each_write_and_only_for_what_changed(engine):
    mine, theirs = RunScript("run_v1", docs=3), RunScript("run_v2", docs=1, org_id="org_b")
    await write(engine, [mine.created(), theirs.created()], 0)
    assert await run_row(engine, "run_v1") == (1, 0, {"doc_0": 1, "doc_1": 1, "doc_2": 1})
    assert (await org_version(engine, "org_a"), await org_version(engine, "org_b")) == (1, 1)

    batch = await write(engine, [mine.passed("doc_1", 0), mine.passed("doc_1", 1), mine.passed("doc_2", 0)], 2)
    assert await run_row(engine, "run_v1") == (2, 3, {"doc_0": 1, "doc_1": 2, "doc_2": 2})
    assert batch.changed == changes.Changed((("run_v1", "org_a", "exp_1"),), frozenset({"org_a"}))
    assert (await org_version(engine, "org_a"), await org_version(engine, "org_b")) == (2, 1)  # not org_b's

    await write(engine, [mine.passed("doc_1", 0)], 5)  # a duplicate: rejected, nothing written
    assert await run_row(engine, "run_v1") == (2, 3, {"doc_0": 1, "doc_1": 2, "doc_2": 2})
    assert await org_version(engine, "org_a") == 2

    await write(engine, [mine.passed("doc_0", 1)], 0, partition=3)  # another partition's row of the org
    assert await run_row(engine, "run_v1") == (3, 4, {"doc_0": 3, "doc_1": 2, "doc_2": 2})
    assert await org_version(engine, "org_a") == 3


async def test_the_state_hash_leaves_versions_out(engine):
    script = RunScript("run_h", docs=2)
    events = [script.created(), *script.all_passes()]
    await write(engine, events, 0)
    before = await state_hashes(engine)
    async with engine.begin() as conn:
        await conn.execute(runs.update().values(version=runs.c.version + 40))
        await conn.execute(run_documents.update().values(version=run_documents.c.version + 40))
    assert await state_hashes(engine) == before
