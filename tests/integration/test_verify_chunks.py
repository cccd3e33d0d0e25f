"""verify goes chunk by chunk (projections/runtime/run_rows.py): it reads the log one
stretch at a time, not one record at a time, holds one chunk of events in memory, and
finds and repairs the same differences as a verification in one piece."""
from __future__ import annotations

import pytest
from sqlalchemy import select, update

from projections.runtime import run_rows, verify
from projections.runtime.projector import Projector
from projections.store.tables import document_targets, event_index, run_documents
from tests.builders import RunScript
from tests.costs import counting
from tests.integration.test_projector import append, project_until

DOCS, PASSES = 40, 3


async def project(log, engine) -> tuple[RunScript, RunScript]:
    """Two runs whose events interleave in the log (one partition), with duplicates,
    retries and a rejected pass."""
    a = RunScript(run_id="run_long", docs=DOCS, n=PASSES, block_type="extract")
    b = RunScript(run_id="run_other", docs=3, n=PASSES, block_type="classifier")
    events = [a.created(), b.created(), a.started()]
    for i, doc in enumerate(a.doc_ids):
        for p in range(PASSES):
            events.append(a.passed(doc, p, {"total": i % 3, "vendor": "ACME" if p else "Acme Inc"}))
            if p == 1:
                events.append(a.passed(doc, p))  # a duplicate: rejected
        if i % 5 == 0:
            events.append(a.failed(doc, 0, final=False, attempt=2))  # a retry after its pass: accepted
        if i % 4 == 0 and i // 4 < len(b.doc_ids):
            events += [b.passed(b.doc_ids[i // 4], p) for p in range(PASSES)]
    events.append(a.passed(a.doc_ids[0], PASSES + 1))  # out of range: rejected
    positions = await append(log, events)
    await project_until(Projector(log, engine), positions)
    return a, b


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(run_rows, "CHUNK", 16)
    monkeypatch.setattr(run_rows, "DOCUMENTS_AT_ONCE", 7)


async def check(engine, log, run_id: str) -> verify.RunCheck:
    async with engine.connect() as conn:
        return await verify.verify_run(conn, log, run_id)


async def test_a_long_run_verifies_in_chunks_with_one_read_per_stretch(event_log, engine, small_chunks):
    a, b = await project(event_log, engine)
    async with engine.connect() as conn:
        events = await run_rows.event_count(conn, a.run_id)
    assert events > 10 * run_rows.CHUNK
    done = []
    with counting() as cost:
        async with engine.connect() as conn:
            found = await verify.verify_run(conn, event_log, a.run_id, lambda n, total: done.append((n, total)))
    assert found.ok and found.events == events, [d.describe() for d in found.differences]
    chunks = -(-events // run_rows.CHUNK)
    assert done[-1] == (events, events) and len(done) == chunks
    assert cost.log_reads <= 2 * chunks, cost  # one read per stretch (another run's events in between)
    assert cost.log_records <= events + events // 2, cost
    assert (await check(engine, event_log, b.run_id)).ok


async def test_chunks_find_and_repair_what_one_piece_finds(event_log, engine, small_chunks, monkeypatch):
    a, _ = await project(event_log, engine)
    whole = await check(engine, event_log, a.run_id)
    async with engine.begin() as conn:  # a document's status, a lost target, a forged event row
        await conn.execute(update(run_documents).where(run_documents.c.run_id == a.run_id,
                                                       run_documents.c.document_id == "doc_17").values(status="error"))
        await conn.execute(document_targets.delete().where(document_targets.c.run_id == a.run_id,
                                                           document_targets.c.document_id == "doc_3"))
        offset = await conn.scalar(select(event_index.c.offset).where(event_index.c.aggregate_id == a.run_id)
                                   .order_by(event_index.c.offset.desc()).limit(1))
        await conn.execute(update(event_index).where(event_index.c.offset == offset).values(reason="forged"))
    chunked = await check(engine, event_log, a.run_id)
    found = {(d.table, d.key, d.field) for d in chunked.differences}
    assert {("run_documents", "doc_17", "status"), ("document_targets", "doc_3/total", "(row)"),
            ("document_targets", "doc_3/vendor", "(row)")} <= found
    assert any(t == "event_index" and f == "reason" for t, _, f in found)
    assert chunked.difference_count == len(chunked.differences) == 4
    assert chunked.replayed_hash == whole.replayed_hash == whole.live_hash != chunked.live_hash

    monkeypatch.setattr(run_rows, "CHUNK", 10**6)  # one piece, as before: the same verdict
    assert {(d.table, d.key, d.field) for d in (await check(engine, event_log, a.run_id)).differences} == found
    monkeypatch.setattr(run_rows, "CHUNK", 16)

    repaired = await verify.repair_run(engine, event_log, a.run_id)
    assert repaired.difference_count == 4
    after = await check(engine, event_log, a.run_id)
    assert after.ok and after.live_hash == whole.live_hash


async def test_a_long_list_of_differences_is_counted_and_bounded(event_log, engine, small_chunks):
    a, _ = await project(event_log, engine)
    async with engine.begin() as conn:
        await conn.execute(update(run_documents).where(run_documents.c.run_id == a.run_id).values(score=0.5))
        await conn.execute(update(event_index).where(event_index.c.aggregate_id == a.run_id).values(producer="x"))
    found = await check(engine, event_log, a.run_id)
    assert found.difference_count > verify.MAX_DIFFERENCES == len(found.differences)
    assert found.differences[0].table == "run_documents"  # listed in table order, as ever
    assert len(found.as_json()["differences"]) == verify.MAX_DIFFERENCES
