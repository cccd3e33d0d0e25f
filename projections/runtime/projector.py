"""The projector loop: consume the log, fold batches, commit rows + checkpoint together.

A batch is: load (a short read) -> fold and prepare its rows (CPU, in a worker thread or
the fold pool's process: never on the event loop, never inside an open write
transaction) -> one write transaction (the checkpoint's compare-and-set first, then the
prepared rows). The compare-and-set is what keeps folding outside
the transaction safe: a projector that lost the partition meanwhile cannot commit.

Three kinds of failure, three answers. Poison (undecodable) is dead-lettered by the
batch. A transient fault (locked database, dropped connection, restart, failover, full
disk) is retried with backoff for as long as it lasts (projections.runtime.transient); it
stops nothing and quarantines nothing, and the heartbeat says `retrying` with the cause.
A deterministic failure on a valid event quarantines that run (projections.runtime.quarantine);
the partition goes on. Only a store error that no single run explains stops a
partition (`PartitionStatus.stopped`), loudly.

Offsets are increasing, not contiguous: the checkpoint means "resume at or after", so
the gaps Kafka leaves (transaction markers, aborted records) are stepped over.

In a consumer group, rebalance callbacks run concurrently with the loop, so a batch
and a revoke/assign never interleave (`_batch_lock`): a revoke waits for the batch in
hand to commit, and records fetched for a partition we no longer hold, or fetched
before its last seek, are dropped (and the partition sought again).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from events.log import EventLog, LogConsumer, Position, Record
from projections.notary import storage as notary
from projections.runtime import bulk, changes, checkpoints, gc_policy, heartbeat, tracing
from projections.runtime.batch import Batch, TransactionLost, load, save
from projections.runtime.checkpoints import LostPartition
from projections.runtime.storage_full import describe
from projections.runtime.transient import is_transient, retry_transient

log = logging.getLogger("runledger.projector")

BATCH_SIZE = 2000
"""Records fetched per poll (at most; the logs also bound a fetch by bytes). A poll's records
are split by partition, each a batch of its own: at 500 a 6-partition catch-up made batches
of ~80 events, whose fixed costs (a state load, a transaction, thread hand-offs) made it 1.3x
slower than at 2,000 (docs/benchmarks.md, "Projector batch size")."""
POOL_FROM_BYTES = 256 * 1024  # smaller batches fold in a thread: their consensus is cheap


@dataclass
class PartitionStatus:
    next_offset: int = 0
    stopped: str | None = None
    applied: int = 0
    poison: int = 0
    seek: int = 0  # serial of the latest seek: records fetched before it are stale


class Observer:
    """Hooks for telemetry (services/telemetry.py fills them with Prometheus metrics)."""

    def batch(self, partition: int, events: int, seconds: float, consensus: list[float]) -> None: ...
    def transient(self, error: BaseException) -> None: ...
    def quarantined(self, count: int) -> None: ...


def fold_and_prepare(batch: Batch) -> Batch:
    """The batch's CPU work, off the event loop: the fold, then its rows with their JSON
    already text (`Batch.prepare`), so that the loop only executes statements."""
    batch.fold()
    batch.prepare()
    if batch.tree is not None:
        batch.tree.grow(batch.records)  # the partition's Merkle tree: leaf hashes, filled tiles
    return batch


def fold_elsewhere(batch: Batch) -> Batch:
    """`fold_and_prepare` in a pool's process. What travels back is the prepared batch
    (strings and plain rows, no fold state): unpickling the folded states instead held the
    API process's GIL for ~0.5 s per heavy batch, in one C call (docs/benchmarks.md)."""
    return fold_and_prepare(batch)


class Projector:
    def __init__(self, log_: EventLog, engine: AsyncEngine, name: str = "main", batch_size: int = BATCH_SIZE,
                 observer: Observer | None = None, heartbeat_interval: float = 2.0,
                 fold_pool: Executor | None = None, catch_up: bulk.CatchUp | None = None,
                 live_cache: bulk.LiveCache | None | bool = True):
        self.log = log_
        self.engine = engine
        self.name = name
        self.batch_size = batch_size
        self.observer = observer or Observer()
        self.heartbeat_interval = heartbeat_interval
        self.fold_pool = fold_pool
        self.catch_up = catch_up or bulk.CatchUp()  # bulk mode while behind (projections/runtime/bulk.py)
        # runs kept between live batches (True: the default budget; False or None: none)
        self.live_cache = bulk.LiveCache() if live_cache is True else None if live_cache is False else live_cache
        self.member = heartbeat.Member(name)
        self.partitions: dict[int, PartitionStatus] = {}
        self.batches = self.applied_total = self.poison_total = 0
        self.transient_total = self.quarantined_total = 0
        self.retrying: str | None = None  # the transient fault being retried, if any
        self.last_batch_at: datetime | None = None
        self.running = False  # in the poll loop
        self.down: str | None = None  # set by a supervisor while the loop is dead
        self._progress = asyncio.Condition()
        self._consumer: LogConsumer | None = None
        self._stopping = asyncio.Event()
        self._batch_lock = asyncio.Lock()
        self._seeks = 0

    async def run(self, group: str = "runledger-projector", partitions: list[int] | None = None) -> None:
        """As a member of `group`; or, given `partitions`, on those alone with no group
        (a rebuild replaying into a new read-model version). Re-runnable after a crash."""
        self.partitions = {}
        self._consumer = consumer = self.log.consumer()
        beating = asyncio.create_task(self._beat_forever())
        try:
            if partitions is None:
                await self._transiently(lambda: consumer.subscribe(group, self._on_assigned, self._on_revoked),
                                        "joining the group")
            else:
                consumer.assign(partitions)
                await self._on_assigned(set(partitions))
            self.running, self.down = True, None
            while not self._stopping.is_set():
                seen = {p: s.seek for p, s in self.partitions.items()}
                records = await self._transiently(lambda: consumer.poll(timeout=0.5, max_records=self.batch_size),
                                                  "polling the log")
                if records or self.catch_up.on:
                    await self.process(records, seen)
        finally:
            self.running = False
            self.catch_up.end()  # what it gathered is dropped (not committed); the garbage collector runs again
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await beating
            await consumer.close()
            with contextlib.suppress(Exception):
                await heartbeat.forget(self.engine, self.member)

    def stop(self) -> None:
        """Finish the batch in hand, then leave the loop."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def process(self, records: list[Record], seen: dict[int, int] | None = None) -> None:
        """Apply fetched records. `seen`: each partition's seek count when they were fetched."""
        by_partition: dict[int, list[Record]] = defaultdict(list)
        for record in records:
            by_partition[record.partition].append(record)
        self.catch_up.polled(len(records), self.batch_size)
        async with self._batch_lock:
            for partition, batch in sorted(by_partition.items()):
                status = self.partitions.get(partition)
                if status is not None and seen is not None and seen.get(partition) != status.seek:
                    self._seek(partition, status.next_offset)  # fetched before a seek: fetch again
                    continue
                await self._process_partition(partition, batch)
            if self.catch_up.on:
                await self._flush_due(drained=len(records) < self.batch_size and await self._caught_up())

    async def _flush_due(self, drained: bool) -> None:
        """Bulk mode: apply what a partition gathered once it is a flush, or everything once
        caught up, which ends the mode."""
        for partition in self.catch_up.due(drained):
            await self._process_partition(partition, [], flush=True)
        if drained:
            self.catch_up.end()

    async def _caught_up(self) -> bool:
        """After a short poll in bulk mode: the partitions held are, together, no more than a
        poll behind the log's end (a fetch can come back short mid-log: Kafka's buffers)."""
        ends = await self._transiently(self.log.end_offsets, "reading the log's end")
        behind = sum(max(0, ends.get(p, 0) - (self.catch_up.pending_from(p) or s.next_offset))
                     for p, s in self.partitions.items() if not s.stopped)
        return behind <= self.batch_size

    async def _process_partition(self, partition: int, records: list[Record], flush: bool = False) -> None:
        status = self.partitions.get(partition)
        if status is None or status.stopped:
            self.catch_up.drop(partition)
            return  # revoked since the fetch, or stopped
        after = self.catch_up.pending_from(partition) or status.next_offset
        records = [r for r in records if r.offset >= after]  # re-fetched after a seek
        if self.catch_up.on:
            records = self.catch_up.take(partition) if flush else self.catch_up.gather(partition, records)
        if not records:
            return
        expected, new = status.next_offset, records[-1].offset + 1
        started, paused = time.perf_counter(), gc_policy.paused_seconds()
        try:
            batch = await self._transiently(lambda: self._apply(partition, records, expected, new),
                                            f"partition {partition} at offset {expected}")
        except LostPartition as exc:
            log.warning("%s; resuming from the stored checkpoint", exc)
            await self._resync(partition)
            return
        except Exception as exc:  # noqa: BLE001 - transient while stopping, or a store bug no run explains
            if self._stopping.is_set() and is_transient(exc):
                return
            log.exception("partition %s stopped at offset %s", partition, expected)
            status.stopped = f"offset {expected}: {type(exc).__name__}: {exc}"
            return
        batch.gc_seconds = gc_policy.paused_seconds() - paused
        if batch.cache is not None:
            batch.cache.committed(batch)
        else:
            self._forget_kept(partition)  # folded without it (in the fold pool): what it kept is behind
        self._applied(status, batch, new, time.perf_counter() - started)
        changes.published(batch.changed)  # committed: this process's caches forget it before any waiter wakes
        async with self._progress:
            self._progress.notify_all()

    async def _apply(self, partition: int, records: list[Record], expected: int, new: int) -> Batch:
        batch = Batch(self.name, records, cache=self._cache_for(partition, records), bulk=self.catch_up.on)
        clock = time.perf_counter()
        await asyncio.to_thread(batch.decode_all)  # validation walks every value: CPU, off the loop
        clock = _step(batch, "decode", clock)
        async with self.engine.connect() as conn:
            await load(conn, batch)
            batch.tree = await notary.tail(conn, partition, expected)
        clock = _step(batch, "load", clock)
        batch = await self._fold(batch)
        clock = _step(batch, "fold", clock)
        try:
            await self._write(batch, partition, expected, new, isolate=False)
            _step(batch, "write", clock)
        except Exception as exc:
            if is_transient(exc) or isinstance(exc, LostPartition):
                raise
            log.warning("partition %s offsets %s..%s: the store refused the batch (%s: %s); isolating runs",
                        partition, expected, new - 1, type(exc).__name__, exc)
            await self._write(batch, partition, expected, new, isolate=True)
        return batch

    def _cache_for(self, partition: int, records: list[Record]):
        """A bulk flush folds from the catch-up's kept aggregates; a live batch from the live
        cache's, unless it is heavy enough for the fold pool (another process: its states
        cannot come back here cheaply), which then starts from the store."""
        if self.catch_up.on:
            self._forget_kept(partition)  # the flushes write these runs now
            return self.catch_up.cache
        if self.live_cache is None or self._pooled(records):
            return None
        return self.live_cache

    def _forget_kept(self, partition: int) -> None:
        """The live cache lets the partition's runs go (read from the store when next touched)."""
        if self.live_cache is not None:
            self.live_cache.forget(partition)

    def _pooled(self, records: list[Record]) -> bool:
        return self.fold_pool is not None and sum(len(r.value) for r in records) >= POOL_FROM_BYTES

    async def _fold(self, batch: Batch) -> Batch:
        """Fold and prepare, off the event loop either way: a heavy batch (POOL_FROM_BYTES of
        records or more) in `fold_pool` (a process pool: the consensus engine's C code cannot
        hold the API's GIL there), anything else in a worker thread (no pickling, no process
        start-up)."""
        if batch.cache is not None or not self._pooled(batch.records):
            return await asyncio.to_thread(fold_and_prepare, batch)
        return await asyncio.get_running_loop().run_in_executor(self.fold_pool, fold_elsewhere, batch)

    async def _write(self, batch: Batch, partition: int, expected: int, new: int, isolate: bool) -> None:
        async with self.engine.begin() as conn:
            # The compare-and-set goes first: it takes the checkpoint row's lock, and a
            # projector that lost the partition fails here before writing anything.
            await checkpoints.advance(conn, self.name, partition, expected, new)
            await save(conn, batch, isolate=isolate)
            await notary.save(conn, batch.tree)
            if isolate and not await checkpoints.still_moved(conn, self.name, partition, new):
                raise TransactionLost(f"partition {partition}: the batch's transaction ended before its commit")

    def _applied(self, status: PartitionStatus, batch: Batch, new: int, seconds: float) -> None:
        status.next_offset, status.applied = new, status.applied + len(batch.records)
        status.poison += batch.poison
        self.batches += 1
        self.applied_total += len(batch.records)
        self.poison_total += batch.poison
        self.last_batch_at = datetime.now(timezone.utc)
        if batch.failures:
            self.quarantined_total += len(batch.failures)
            self.observer.quarantined(len(batch.failures))
            for key, error in batch.failures.items():
                log.error("quarantined %s %s: %s; its events are parked until `runledger quarantine retry`",
                          key[0], key[1], error)
        self.observer.batch(batch.records[0].partition, len(batch.records), seconds, batch.consensus_seconds)
        tracing.batch_applied(batch, self.name, seconds)  # its log line and span, with the events' trace ids

    async def _transiently(self, work: Callable[[], Any], what: str) -> Any:
        """`await work()`, retried through transient faults until it succeeds or we stop."""
        def noted(exc: BaseException) -> None:
            self.transient_total += 1
            self.retrying = f"{what}: {describe(exc)}"  # "storage full: ..." for a full disk
            self.observer.transient(exc)

        try:
            return await retry_transient(work, what, self._stopping.is_set, noted)
        finally:
            self.retrying = None

    async def _beat_forever(self) -> None:
        while True:
            try:
                await heartbeat.beat(self.engine, self.member, **self.heartbeat_values())
            except Exception as exc:  # noqa: BLE001 - a missed beat is what health looks for
                log.warning("heartbeat not written: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self.heartbeat_interval)

    def heartbeat_values(self) -> dict[str, Any]:
        stopped = {p: s.stopped for p, s in self.partitions.items() if s.stopped}
        state = "stopped" if stopped else "retrying" if self.retrying else "running"
        detail = "; ".join(f"partition {p}: {e}" for p, e in stopped.items()) or self.retrying
        return dict(partitions=sorted(self.partitions), state=state, detail=detail,
                    applied=self.applied_total, last_batch_at=self.last_batch_at)

    async def switch_engine(self, engine: AsyncEngine, ready=None, switched=None) -> None:
        """Project into `engine` (another read-model version, projections/runtime/follow.py) from
        now on. The batch in hand commits first; `await ready()` runs while no batch does;
        then each held partition resumes from the new engine's stored checkpoint, and
        `switched()` (plain, no await) runs in the same step, before any batch or waiter."""
        async with self._batch_lock:
            if ready is not None:
                await ready()
            async with engine.connect() as conn:
                stored = await checkpoints.load(conn, self.name)
            self.engine = engine
            if switched is not None:
                switched()
            for partition, status in self.partitions.items():
                status.next_offset = stored.get(partition, 0)
                self._seek(partition, status.next_offset)
        async with self._progress:
            self._progress.notify_all()

    async def _on_assigned(self, partitions: set[int]) -> None:
        async with self._batch_lock:
            stored = await self._transiently(self._stored_checkpoints, "loading checkpoints")
            for partition in partitions:
                offset = stored.get(partition, 0)
                self.partitions[partition] = PartitionStatus(next_offset=offset)
                self._seek(partition, offset, assigned=True)
        log.info("projector %s: assigned partitions %s at %s", self.name, sorted(partitions),
                 {p: stored.get(p, 0) for p in sorted(partitions)})

    async def _stored_checkpoints(self) -> dict[int, int]:
        async with self.engine.connect() as conn:
            return await checkpoints.load(conn, self.name)

    async def _on_revoked(self, partitions: set[int]) -> None:
        async with self._batch_lock:  # the batch in hand commits first
            for partition in partitions:
                self.partitions.pop(partition, None)
                self._forget_kept(partition)  # another member writes its runs now
        async with self._progress:
            self._progress.notify_all()  # waiters on those partitions go to the stored checkpoint
        log.info("projector %s: released partitions %s", self.name, sorted(partitions))

    async def _resync(self, partition: int) -> None:
        """The checkpoint moved under us. If the consumer still holds the partition (our own
        stale view, e.g. across a rebalance) go on from the stored checkpoint; a true zombie
        does the same until the group takes the partition away, and its compare-and-set
        keeps it from ever committing over the owner."""
        stored = (await self._transiently(self._stored_checkpoints, "loading checkpoints")).get(partition, 0)
        if self._consumer is None or partition not in self._consumer.assignment():
            self.partitions.pop(partition, None)
            return
        self.partitions.setdefault(partition, PartitionStatus()).next_offset = stored
        self._seek(partition, stored)

    def _seek(self, partition: int, offset: int, assigned: bool = False) -> None:
        self.catch_up.drop(partition)  # gathered records and kept aggregates are of the old position
        self._forget_kept(partition)
        status = self.partitions.get(partition)
        if status is not None:
            self._seeks += 1
            status.seek = self._seeks
        if self._consumer is not None and (assigned or partition in self._consumer.assignment()):
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


def _step(batch: Batch, name: str, since: float) -> float:
    """Note the seconds a batch's step took since `since` (its log line's `steps`); now."""
    now = time.perf_counter()
    batch.steps[name] = now - since
    return now
