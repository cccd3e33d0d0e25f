"""The projector loop: consume the log, fold batches, commit rows + checkpoint together.

A partition whose fold raises on a valid event stops (a bug must not be skipped);
the others go on. `status()` and `wait()` serve health, lag and read-your-writes.

In a consumer group, rebalance callbacks run concurrently with the loop, so a batch
and a revoke/assign never interleave (`_batch_lock`): a revoke waits for the batch in
hand to commit, and records fetched for a partition we no longer hold are dropped.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from events.log import EventLog, LogConsumer, Position, Record

from . import checkpoints
from .batch import Batch, project
from .checkpoints import LostPartition

log = logging.getLogger("runledger.projector")


@dataclass
class PartitionStatus:
    next_offset: int = 0
    stopped: str | None = None
    applied: int = 0
    poison: int = 0


class Projector:
    def __init__(self, log_: EventLog, engine: AsyncEngine, name: str = "main", batch_size: int = 500):
        self.log = log_
        self.engine = engine
        self.name = name
        self.batch_size = batch_size
        self.partitions: dict[int, PartitionStatus] = {}
        self.batches = 0
        self.applied_total = 0
        self.poison_total = 0
        self._progress = asyncio.Condition()
        self._consumer: LogConsumer | None = None
        self._stopping = asyncio.Event()
        self._batch_lock = asyncio.Lock()

    async def run(self, group: str = "runledger-projector", partitions: list[int] | None = None) -> None:
        """As a member of `group`; or, given `partitions`, on those alone with no group
        (a rebuild replaying into a new read-model version)."""
        self._consumer = consumer = self.log.consumer()
        if partitions is None:
            await consumer.subscribe(group, self._on_assigned, self._on_revoked)
        else:
            consumer.assign(partitions)
            await self._on_assigned(set(partitions))
        try:
            while not self._stopping.is_set():
                records = await consumer.poll(timeout=0.5, max_records=self.batch_size)
                if records:
                    await self.process(records)
        finally:
            await consumer.close()

    def stop(self) -> None:
        """Finish the batch in hand, then leave the loop."""
        self._stopping.set()

    async def process(self, records: list[Record]) -> None:
        by_partition: dict[int, list[Record]] = defaultdict(list)
        for record in records:
            by_partition[record.partition].append(record)
        async with self._batch_lock:
            for partition, batch in sorted(by_partition.items()):
                await self._process_partition(partition, batch)

    async def _process_partition(self, partition: int, records: list[Record]) -> None:
        status = self.partitions.get(partition)
        if status is None or status.stopped:
            return  # revoked since the fetch, or stopped on a bug
        records = [r for r in records if r.offset >= status.next_offset]  # re-fetched after a seek
        if not records:
            return
        expected, new = status.next_offset, records[-1].offset + 1
        if records[0].offset != expected:
            log.warning("partition %s: records start at %s, checkpoint is %s; seeking back",
                        partition, records[0].offset, expected)
            self._seek(partition, expected)
            return
        batch = Batch(self.name, records)
        try:
            async with self.engine.begin() as conn:
                # The compare-and-set goes first: it takes the checkpoint row's lock, and a
                # projector that lost the partition fails here before writing anything.
                await checkpoints.advance(conn, self.name, partition, expected, new)
                await project(conn, batch)
        except LostPartition as exc:
            log.warning("%s; resuming from the stored checkpoint", exc)
            await self._resync(partition)
            return
        except Exception as exc:  # a bug in the fold or the store: stop this partition, loudly
            log.exception("partition %s stopped at offset %s", partition, expected)
            status.stopped = f"offset {expected}: {type(exc).__name__}: {exc}"
            return
        status.next_offset, status.applied = new, status.applied + len(records)
        status.poison += batch.poison
        self.batches += 1
        self.applied_total += len(records)
        self.poison_total += batch.poison
        async with self._progress:
            self._progress.notify_all()

    async def switch_engine(self, engine: AsyncEngine, ready=None) -> None:
        """Project into `engine` (another read-model version, projections/follow.py) from
        now on. The batch in hand commits first; `await ready()` runs while no batch does;
        then each held partition resumes from the new engine's stored checkpoint."""
        async with self._batch_lock:
            if ready is not None:
                await ready()
            self.engine = engine
            async with engine.connect() as conn:
                stored = await checkpoints.load(conn, self.name)
            for partition, status in self.partitions.items():
                status.next_offset = stored.get(partition, 0)
                self._seek(partition, status.next_offset)
        async with self._progress:
            self._progress.notify_all()

    async def _on_assigned(self, partitions: set[int]) -> None:
        async with self._batch_lock:
            async with self.engine.connect() as conn:
                stored = await checkpoints.load(conn, self.name)
            for partition in partitions:
                offset = stored.get(partition, 0)
                self.partitions[partition] = PartitionStatus(next_offset=offset)
                self._consumer.seek(partition, offset)
        log.info("projector %s: assigned partitions %s at %s", self.name, sorted(partitions),
                 {p: stored.get(p, 0) for p in sorted(partitions)})

    async def _on_revoked(self, partitions: set[int]) -> None:
        async with self._batch_lock:  # the batch in hand commits first
            for partition in partitions:
                self.partitions.pop(partition, None)
        async with self._progress:
            self._progress.notify_all()  # waiters on those partitions go to the stored checkpoint
        log.info("projector %s: released partitions %s", self.name, sorted(partitions))

    async def _resync(self, partition: int) -> None:
        """The checkpoint moved under us. If the consumer still holds the partition (our own
        stale view, e.g. across a rebalance) go on from the stored checkpoint; a true zombie
        does the same until the group takes the partition away, and its compare-and-set
        keeps it from ever committing over the owner."""
        async with self.engine.connect() as conn:
            stored = (await checkpoints.load(conn, self.name)).get(partition, 0)
        if self._consumer is None or partition not in self._consumer.assignment():
            self.partitions.pop(partition, None)
            return
        self.partitions.setdefault(partition, PartitionStatus()).next_offset = stored
        self._seek(partition, stored)

    def _seek(self, partition: int, offset: int) -> None:
        if self._consumer is not None and partition in self._consumer.assignment():
            self._consumer.seek(partition, offset)

    def passed(self, position: Position) -> bool:
        status = self.partitions.get(position.partition)
        return status is not None and status.next_offset > position.offset

    async def wait(self, position: Position, timeout: float) -> bool:
        """True once `position` is applied: seen here while this projector holds the
        partition, else read from the stored checkpoint (another member of the group holds
        it, or it was revoked while we waited). False on timeout."""
        deadline = time.monotonic() + timeout
        async with self._progress:
            while position.partition in self.partitions and not self.passed(position):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._progress.wait(), remaining)
            if self.passed(position):
                return True
        return await checkpoints.wait_until_stored(self.engine, self.name, position.partition,
                                                   position.offset, deadline)
