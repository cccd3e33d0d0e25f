"""One read of the embedded log holds a bounded number of bytes, whatever the record count
asked for: a run of the largest records a producer may write cannot make one projector
batch hold thousands of them (Kafka bounds its fetches by bytes the same way)."""
from __future__ import annotations

from events import sqlite_log
from events.log import Message
from events.sqlite_log import SqliteEventLog


async def test_a_read_stops_once_its_records_reach_the_byte_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_log, "READ_MAX_BYTES", 1000)
    log = SqliteEventLog(tmp_path / "log.db", partitions=1)
    await log.start()
    try:
        values = [bytes([i]) * 300 for i in range(10)]
        await log.append([Message("run_big", v) for v in values])
        first = await log.read(0, 0, 500)
        assert [r.value for r in first] == values[:4]  # 1,200 bytes: the fourth reached the bound
        read, offset = [], 0
        while offset < len(values):
            got = await log.read(0, offset, 500)
            read += got
            offset = got[-1].offset + 1
        assert [r.value for r in read] == values  # every record, once, in order

        monkeypatch.setattr(sqlite_log, "READ_MAX_BYTES", 10)  # a record larger than the bound
        assert [r.value for r in await log.read(0, 0, 500)] == values[:1]  # still comes, alone
    finally:
        await log.close()


async def test_a_consumer_poll_is_bounded_the_same_way(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_log, "READ_MAX_BYTES", 1000)
    log = SqliteEventLog(tmp_path / "log.db", partitions=1)
    await log.start()
    consumer = log.consumer()
    try:
        await log.append([Message("run_big", bytes([i]) * 300) for i in range(10)])
        consumer.assign([0])
        consumer.seek(0, 0)
        sizes = []
        while sum(sizes) < 10:
            sizes.append(len(await consumer.poll(timeout=1.0, max_records=2000)))
        assert sizes == [4, 4, 2]
    finally:
        await consumer.close()
        await log.close()
