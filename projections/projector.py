"""The projector loop: consume the log, fold batches, commit rows + checkpoint together.

A partition whose fold raises on a valid event stops (a bug must not be skipped);
the others go on. `status()` and `wait()` serve health, lag and read-your-writes.
"""
from __future__ import annotations

import asyncio
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

    async def run(self, group: str = "runledger-projector") -> None:
        self._consumer = consumer = self.log.consumer()
        await consumer.subscribe(group, self._on_assigned, self._on_revoked)
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
        for partition, batch in sorted(by_partition.items()):
            await self._process_partition(partition, batch)

    async def _process_partition(self, partition: int, records: list[Record]) -> None:
        status = self.partitions.setdefault(partition, PartitionStatus())
        if status.stopped:
            return
        expected, new = records[0].offset, records[-1].offset + 1
        if expected != status.next_offset:
            log.warning("partition %s: records start at %s, checkpoint is %s; skipping batch",
                        partition, expected, status.next_offset)
            return
        batch = Batch(self.name, records)
        try:
            async with self.engine.begin() as conn:
                # The compare-and-set goes first: it takes the checkpoint row's lock, and a
                # projector that lost the partition fails here before writing anything.
                await checkpoints.advance(conn, self.name, partition, expected, new)
                await project(conn, batch)
        except LostPartition as exc:
            log.warning("%s", exc)
            self.partitions.pop(partition, None)
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

    async def _on_assigned(self, partitions: set[int]) -> None:
        async with self.engine.connect() as conn:
            stored = await checkpoints.load(conn, self.name)
        for partition in partitions:
            offset = stored.get(partition, 0)
            self.partitions[partition] = PartitionStatus(next_offset=offset)
            self._consumer.seek(partition, offset)

    async def _on_revoked(self, partitions: set[int]) -> None:
        for partition in partitions:
            self.partitions.pop(partition, None)

    def passed(self, position: Position) -> bool:
        status = self.partitions.get(position.partition)
        return status is not None and status.next_offset > position.offset

    async def wait(self, position: Position, timeout: float) -> bool:
        """True once this projector has applied `position`; False on timeout."""
        deadline = time.monotonic() + timeout
        async with self._progress:
            while not self.passed(position):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                try:
                    await asyncio.wait_for(self._progress.wait(), remaining)
                except asyncio.TimeoutError:
                    return self.passed(position)
        return True
