"""The EventLog contract. Every adapter runs this suite unchanged (see conftest `event_log`)."""
from __future__ import annotations

import asyncio
import time

import pytest

from events.log import Message, Position, partition_for


def msgs(key: str, count: int, prefix: str = "v") -> list[Message]:
    return [Message(key, f"{prefix}{i}".encode()) for i in range(count)]


async def test_append_returns_one_position_per_message_in_order(event_log):
    positions = await event_log.append(msgs("run_a", 3))
    partition = partition_for("run_a", event_log.partitions)
    assert [p.partition for p in positions] == [partition] * 3
    assert [p.offset for p in positions] == [positions[0].offset + i for i in range(3)]


async def test_a_key_always_lands_in_the_same_partition_and_keeps_order(event_log):
    await event_log.append([*msgs("run_a", 2, "a"), *msgs("run_b", 2, "b"), *msgs("run_a", 2, "c")])
    partition = partition_for("run_a", event_log.partitions)
    records = [r for r in await event_log.read(partition, 0, 100) if r.key == "run_a"]
    assert [r.value for r in records] == [b"a0", b"a1", b"c0", b"c1"]


async def test_read_from_an_offset_returns_what_was_written(event_log):
    positions = await event_log.append(msgs("run_r", 5))
    p = positions[0].partition
    records = await event_log.read(p, positions[2].offset, 100)
    assert [r.value for r in records] == [b"v2", b"v3", b"v4"]
    assert [r.position for r in records] == positions[2:]
    assert all(r.timestamp_ms > 0 for r in records)
    assert [r.value for r in await event_log.read(p, positions[0].offset, 2)] == [b"v0", b"v1"]


async def test_end_offsets_are_the_next_offsets_to_write(event_log):
    before = await event_log.end_offsets()
    assert set(before) == set(range(event_log.partitions))
    positions = await event_log.append(msgs("run_e", 4))
    after = await event_log.end_offsets()
    p = positions[0].partition
    assert after[p] == before[p] + 4 == positions[-1].offset + 1


async def test_a_consumer_reads_assigned_partitions_from_where_it_seeks(event_log):
    positions = await event_log.append(msgs("run_c", 4))
    p = positions[0].partition
    consumer = event_log.consumer()
    try:
        consumer.assign([p])
        consumer.seek(p, positions[1].offset)
        got = await _drain(consumer, 3)
        assert [r.value for r in got] == [b"v1", b"v2", b"v3"]
        assert consumer.assignment() == {p}
    finally:
        await consumer.close()


async def test_a_waiting_consumer_wakes_promptly_on_append(event_log):
    p = partition_for("run_w", event_log.partitions)
    consumer = event_log.consumer()
    try:
        consumer.assign([p])
        consumer.seek(p, (await event_log.end_offsets())[p])
        await consumer.poll(timeout=0.05)
        # The poll would wait an hour: only the append can end it within the test's bound.
        waiter = asyncio.create_task(consumer.poll(timeout=3600))
        await asyncio.sleep(0.2)  # let the poll start waiting before the append
        await event_log.append(msgs("run_w", 1))
        records = await asyncio.wait_for(waiter, 60)
        assert [r.value for r in records] == [b"v0"]
    finally:
        await consumer.close()


async def test_poll_returns_empty_after_its_timeout_when_nothing_arrives(event_log):
    consumer = event_log.consumer()
    try:
        consumer.assign([0])
        consumer.seek(0, (await event_log.end_offsets())[0])
        assert await consumer.poll(timeout=0.3) == []
    finally:
        await consumer.close()


async def test_subscribe_assigns_partitions_and_lets_the_callback_seek(event_log):
    positions = await event_log.append(msgs("run_s", 3))
    p = positions[0].partition
    consumer = event_log.consumer()
    assigned: set[int] = set()

    async def on_assigned(partitions: set[int]) -> None:
        assigned.update(partitions)
        for partition in partitions:
            consumer.seek(partition, positions[2].offset if partition == p else 10**9)

    async def on_revoked(partitions: set[int]) -> None:
        assigned.difference_update(partitions)

    try:
        await consumer.subscribe("contract-group", on_assigned, on_revoked)
        got = await _drain(consumer, 1, timeout=30)
        assert [r.value for r in got] == [b"v2"]
        assert assigned == set(range(event_log.partitions))
    finally:
        await consumer.close()


async def test_bytes_are_stored_verbatim(event_log):
    payload = bytes(range(256)) * 4
    [position] = await event_log.append([Message("run_bin", payload)])
    [record] = await event_log.read(position.partition, position.offset, 1)
    assert record.value == payload and record.key == "run_bin"


def test_position_tokens_round_trip():
    assert Position.parse(Position(3, 42).token()) == Position(3, 42)
    with pytest.raises(ValueError, match="bad position token"):
        Position.parse("nope")


async def _drain(consumer, count: int, timeout: float = 10) -> list:
    got, deadline = [], time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        got.extend(await consumer.poll(timeout=1))
    return got
