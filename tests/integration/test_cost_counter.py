"""The cost counter the bounded-cost tests rely on (tests/costs.py) counts what was read."""
from __future__ import annotations

from sqlalchemy import insert, select

from events.log import Message
from events.sqlite_log import SqliteEventLog
from projections.store.tables import blocks, checkpoints, runs
from tests.costs import counting


async def test_it_counts_statements_rows_and_json_values(engine):
    async with engine.begin() as conn:
        await conn.execute(insert(checkpoints), [dict(projection="p", partition=i, next_offset=i) for i in range(7)])
    with counting() as cost:
        async with engine.connect() as conn:
            assert len((await conn.execute(select(checkpoints))).all()) == 7
            assert (await conn.execute(select(runs.c.state))).first() is None
    assert (cost.statements, cost.rows) == (2, 7), cost.sql
    async with engine.connect() as conn:
        assert len((await conn.execute(select(checkpoints))).all()) == 7  # uncounted once closed
    assert cost.statements == 2


async def test_it_counts_json_values_decoded_from_the_store(engine):
    async with engine.begin() as conn:
        await conn.execute(insert(blocks), [dict(block_key=f"b{i}", org_id="o", state={"i": i}) for i in range(3)])
    with counting() as cost:
        async with engine.connect() as conn:
            states = (await conn.execute(select(blocks.c.state))).scalars().all()
    assert sorted(s["i"] for s in states) == [0, 1, 2]
    assert (cost.rows, cost.json_values, cost.json_bytes) == (3, 3, 3 * len('{"i":0}'))


async def test_it_counts_log_reads_and_records(tmp_path):
    log = SqliteEventLog(tmp_path / "log.db", partitions=1)
    await log.start()
    try:
        await log.append([Message("k", b"v%d" % i) for i in range(5)])
        with counting() as cost:
            assert len(await log.read(0, 1, 10)) == 4
        assert (cost.log_reads, cost.log_records) == (1, 4)
    finally:
        await log.close()
