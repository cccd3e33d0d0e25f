"""Consumer groups on the embedded log: members share partitions like Kafka consumers."""
from __future__ import annotations

import asyncio
import time

from events.log import Message
from events.sqlite_log import SqliteEventLog


class Member:
    """A group member that records its assignment through the callbacks."""

    def __init__(self, log: SqliteEventLog, group: str = "g", session_timeout: float = 6.0):
        self.consumer = log.consumer(heartbeat=0.1, session_timeout=session_timeout)
        self.group = group
        self.owned: set[int] = set()
        self.revoked: list[set[int]] = []

    async def join(self) -> Member:
        await self.consumer.subscribe(self.group, self._assigned, self._revoked)
        return self

    async def _assigned(self, partitions: set[int]) -> None:
        assert not partitions & self.owned
        self.owned |= partitions
        for partition in partitions:
            self.consumer.seek(partition, 0)

    async def _revoked(self, partitions: set[int]) -> None:
        self.revoked.append(set(partitions))
        self.owned -= partitions


async def settle(members: list[Member], done, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        await asyncio.gather(*(m.consumer.poll(timeout=0.05) for m in members))
    assert done(), [m.owned for m in members]


async def test_a_lone_member_owns_every_partition_at_once(tmp_path):
    log = SqliteEventLog(tmp_path / "log.db", partitions=6)
    await log.start()
    try:
        alone = await Member(log).join()
        assert alone.owned == set(range(6)) and alone.consumer.assignment() == alone.owned
        await alone.consumer.close()
        assert alone.revoked == [set(range(6))]
        assert await log.group_claims("g") == {}
    finally:
        await log.close()


async def test_members_split_the_partitions_and_a_leaver_hands_them_back(tmp_path):
    log = SqliteEventLog(tmp_path / "log.db", partitions=6)
    await log.start()
    try:
        first = await Member(log).join()
        second = await Member(log).join()
        assert second.owned == set()  # nothing is free until the first member gives it up
        await settle([first, second], lambda: len(first.owned) == len(second.owned) == 3)
        assert first.owned | second.owned == set(range(6))
        assert {frozenset(c) for c in (await log.group_claims("g")).values()} == {
            frozenset(first.owned), frozenset(second.owned)}

        await second.consumer.close()
        await settle([first], lambda: first.owned == set(range(6)))
    finally:
        await first.consumer.close()
        await log.close()


async def test_a_silent_member_loses_its_partitions_after_the_session_timeout(tmp_path):
    log = SqliteEventLog(tmp_path / "log.db", partitions=4)
    await log.start()
    try:
        survivor = await Member(log, session_timeout=1.0).join()
        silent = await Member(log, session_timeout=1.0).join()
        await settle([survivor, silent], lambda: len(survivor.owned) == len(silent.owned) == 2)
        silent.consumer._beating.cancel()  # a frozen process: no heartbeats, no polls
        await settle([survivor], lambda: survivor.owned == set(range(4)))
    finally:
        await survivor.consumer.close()
        await log.close()


async def test_groups_do_not_interfere_and_members_read_what_they_own(tmp_path):
    log = SqliteEventLog(tmp_path / "log.db", partitions=4)
    await log.start()
    try:
        positions = await log.append([Message(f"run_{i}", b"x") for i in range(40)])
        workers = [await Member(log, "workers").join(), await Member(log, "workers").join()]
        projector = await Member(log, "projector").join()
        assert projector.owned == set(range(4))
        await settle(workers, lambda: all(len(w.owned) == 2 for w in workers))
        got: list = []
        for worker in workers:
            for partition in worker.owned:
                worker.consumer.seek(partition, 0)
            got += [(r.partition, worker) for r in await worker.consumer.poll(timeout=0.5)]
        assert len(got) == len(positions)
        assert all(partition in worker.owned for partition, worker in got)
    finally:
        for member in (*workers, projector):
            await member.consumer.close()
        await log.close()
