"""How a batch reaches the read model: prepared rows (pure, picklable, no fold state),
then one statement per table for the whole batch, and a store refusal isolated to the
aggregate it belongs to."""
from __future__ import annotations

import pickle

from sqlalchemy import event, insert

from events.codec import encode
from events.envelope import Event
from events.log import Record
from projections.runtime import quarantine
from projections.runtime.batch import Batch, load, save
from projections.runtime.projector import Projector
from projections.store import views
from projections.store.database import make_engine, prepare_schema
from projections.store.tables import event_index
from tests.builders import RunScript
from tests.conftest import fresh_database_url
from tests.integration.test_projector import append, project_until
from tests.state_hash import state_hashes


def run_events(runs: int, docs: int = 3, n: int = 3, start: int = 0) -> list[Event]:
    scripts = [RunScript(run_id=f"run_w{start + r}", docs=docs, n=n) for r in range(runs)]
    return [s.created() for s in scripts] + [e for s in scripts for e in s.all_passes()]


def as_records(events: list[Event], first_offset: int = 0) -> list[Record]:
    return [Record(0, first_offset + i, e.aggregate_id, encode(e), 1_700_000_000_000 + i)
            for i, e in enumerate(events)]


async def folded(engine, records: list[Record]) -> Batch:
    batch = Batch("main", records)
    batch.decode_all()
    async with engine.connect() as conn:
        await load(conn, batch)
    batch.fold()
    return batch


async def statements_to_save(engine, batch: Batch) -> int:
    executed = []

    def count(*_args):
        executed.append(1)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        async with engine.begin() as conn:
            await save(conn, batch)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    return len(executed)


async def test_a_batch_writes_one_statement_per_table_whatever_its_rows(engine):
    """Creating 2 runs or 8, then passing every document of them: the same statements."""
    counts = []
    offset = 0
    for runs in (2, 8):
        events = run_events(runs, start=offset)
        created = as_records(events[:runs], offset)
        passes = as_records(events[runs:], offset + runs)
        offset += len(events)
        counts.append((await statements_to_save(engine, await folded(engine, created)),
                       await statements_to_save(engine, await folded(engine, passes))))
    assert counts[0] == counts[1]
    async with engine.connect() as conn:
        statuses = [(await views.get_run_any(conn, f"run_w{i}")).status for i in (0, 1)]
    assert statuses == ["completed", "completed"]


async def test_a_prepared_batch_travels_pickled_without_fold_state_and_writes_the_same(engine, request, tmp_path):
    events = run_events(3)
    in_place = await folded(engine, as_records(events))
    async with engine.begin() as conn:
        await save(conn, in_place)

    kind = "sqlite" if engine.url.drivername.startswith("sqlite") else "postgres"
    (tmp_path / "other").mkdir()
    other_url = await fresh_database_url(kind, request, tmp_path / "other")
    other = make_engine(other_url)
    await prepare_schema(other_url, other)
    try:
        batch = await folded(other, as_records(events))
        batch.prepare()
        payload = pickle.dumps(batch)
        assert b"projections.domain.state" not in payload and b"events.envelope" not in payload  # rows, no fold state
        travelled = pickle.loads(payload)
        async with other.begin() as conn:
            await save(conn, travelled)
        assert await state_hashes(other) == await state_hashes(engine)
    finally:
        await other.dispose()


async def test_a_row_the_store_refuses_quarantines_its_run_alone(event_log, engine):
    """A conflicting index row already at one run's position: the batch's one INSERT fails,
    the retry isolates each run in a savepoint, and only that run is set aside."""
    events = run_events(3, docs=2)
    positions = await append(event_log, events)
    victim_at = positions[events.index(next(e for e in events if e.aggregate_id == "run_w1"))]
    async with engine.begin() as conn:
        await conn.execute(insert(event_index).values(
            partition=victim_at.partition, offset=victim_at.offset, event_id="x", aggregate_id="squatter",
            org_id="org_a", type="RunCreated", occurred_at=events[0].occurred_at, producer="test",
            accepted=True, reason=None, body=None))
    await project_until(Projector(event_log, engine), positions)

    async with engine.connect() as conn:
        for run_id in ("run_w0", "run_w2"):
            assert (await views.get_run_any(conn, run_id)).status == "completed"
        assert await views.get_run_any(conn, "run_w1") is None
        listed = await quarantine.list_quarantined(conn)
        parked = await quarantine.parked_records(conn, "main", "run_w1")
    assert [(q.aggregate_id, "store: " in q.error) for q in listed] == [("run_w1", True)]
    assert len(parked) == sum(e.aggregate_id == "run_w1" for e in events)
