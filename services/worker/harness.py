"""The worker loop: learn runs from the log, run the block for each missing pass, emit facts.

A worker is a member of the consumer group `runledger-workers`; a run belongs to
the member that owns its partition. On assignment the worker reads its partitions
from offset 0, folding each run with the same pure fold as the projector, so it
knows every run's spec, which passes already have a fact, and whether the run was
cancelled. Only once a partition is caught up does it start work there: it takes
each pending run (RunQueued), starts each queued one (RunStarted), then calls the
block for every document × pass without a fact, with bounded concurrency.
RunQueued has a deterministic id, so two workers taking the same run count once.

`org_id=None` works for every organisation (the in-server worker of `runledger serve
--worker`): `producer` then offers `async for_org(org) -> Producer`.

Each pass is one trace (docs/operations.md, "Following one pass"): its events carry a
W3C traceparent, a new trace per pass, or a span of the worker's current trace when it
has one (OpenTelemetry, or `events.trace.use_trace`).

A killed worker's partitions go to another member, which refolds them and runs
only the passes that still have no fact. A pass that was in flight when its
worker died may run twice; its deterministic event id (and the fold, which keeps
the first fact per document × pass) means it is counted once.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import Any, Callable

from events import trace
from events.catalogue import RUN_EVENT_TYPES
from events.codec import UndecodableEvent, decode
from events.envelope import Event
from events.log import EventLog, LogConsumer, Record
from projections.domain.fold import apply, no_scores
from projections.domain.outputs import output_problem
from projections.domain.state import RUN_TERMINAL, RunState

from .blocks import BlockFunction, Retryable, call_block
from .work import InvalidOutput, PassKey, RunWork, Slot, WorkerStats

GROUP = "runledger-workers"
log = logging.getLogger("runledger.worker")


class Worker:
    def __init__(
        self, block: BlockFunction, producer: Any, log_: EventLog, *, org_id: str | None, concurrency: int = 8,
        max_attempts: int = 3, backoff: float = 0.5, max_backoff: float = 30.0,
        select: Callable[[RunState], bool] | None = None, group: str = GROUP, name: str | None = None,
    ):
        self.block, self.producer, self.log, self.org_id = block, producer, log_, org_id
        self.concurrency, self.max_attempts = concurrency, max_attempts
        self.backoff, self.max_backoff = backoff, max_backoff
        self.select, self.group = select, group
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.stats = WorkerStats()
        self.runs: dict[str, RunWork] = {}
        self._ignored: set[str] = set()
        self._catching_up: dict[int, int] = {}  # partition -> offset to reach before working there
        self._slots = asyncio.Semaphore(concurrency)
        self._stopping = asyncio.Event()
        self._consumer: LogConsumer | None = None

    async def run(self) -> None:
        """Work until `stop()`: then start nothing new, let passes in hand finish, leave the group."""
        self._consumer = consumer = self.log.consumer()
        await consumer.subscribe(self.group, self._on_assigned, self._on_revoked)
        try:
            while not self._stopping.is_set():
                self._fold(await consumer.poll(timeout=0.25))
                self._schedule()
            await asyncio.gather(*(w.task for w in self.runs.values() if w.task), return_exceptions=True)
        finally:
            await self._abandon(list(self.runs.values()))
            await consumer.close()

    def stop(self) -> None:
        self._stopping.set()

    @property
    def partitions(self) -> set[int]:
        return self._consumer.assignment() if self._consumer else set()

    # -- the group ------------------------------------------------------------------

    async def _on_assigned(self, partitions: set[int]) -> None:
        ends = await self.log.end_offsets()
        for partition in partitions:
            self._consumer.seek(partition, 0)
            if ends.get(partition, 0) > 0:
                self._catching_up[partition] = ends[partition]
        log.info("worker %s: assigned partitions %s", self.name, sorted(partitions))

    async def _on_revoked(self, partitions: set[int]) -> None:
        lost = [w for w in self.runs.values() if w.partition in partitions]
        await self._abandon(lost)
        for partition in partitions:
            self._catching_up.pop(partition, None)
        log.info("worker %s: revoked partitions %s (%d runs handed over)", self.name, sorted(partitions), len(lost))

    async def _abandon(self, runs: list[RunWork]) -> None:
        """Forget runs; passes still in hand are cancelled (their new owner redoes them)."""
        tasks = [t for w in runs for t in (w.task, *w.jobs) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for work in runs:
            self.runs.pop(work.run_id, None)

    # -- reading the log ------------------------------------------------------------

    def _fold(self, records: list[Record]) -> None:
        for record in records:
            target = self._catching_up.get(record.partition)
            if target is not None and record.offset + 1 >= target:
                del self._catching_up[record.partition]
            event = self._decode(record)
            if event is not None:
                self._apply(record.partition, event)

    def _decode(self, record: Record) -> Event | None:
        try:
            event = decode(record.value)
        except UndecodableEvent:
            return None  # poison is the projector's to report; a worker has nothing to do with it
        if event.type not in RUN_EVENT_TYPES or event.aggregate_id in self._ignored:
            return None
        if self.org_id is not None and event.org_id != self.org_id:
            return None
        return event

    def _apply(self, partition: int, event: Event) -> None:
        work = self.runs.get(event.aggregate_id)
        if work is None and event.type != "RunCreated":
            return  # a run that finished before this worker looked, or one it never knew
        applied = apply(work.state if work else None, event, no_scores)  # lifecycle only: no consensus cost
        if not applied.accepted:
            return
        if work is None:
            if self.select is not None and not self.select(applied.state):
                self._ignored.add(event.aggregate_id)
                return
            self.runs[event.aggregate_id] = work = RunWork(applied.state, partition)
        work.state = applied.state
        key = (getattr(event.payload, "document_id", None), getattr(event.payload, "pass_index", None))
        if event.type == "DocumentPassFailed" and not event.payload.final:
            work.retried[key] = max(work.retried.get(key, 0), event.payload.attempt)
        else:  # the pass's fact is back from the log: the state shows it from now on
            work.emitted.discard(key)  # (an earlier attempt's retry read back late must not: the pass would run again)

    # -- doing the work -------------------------------------------------------------

    def _schedule(self) -> None:
        now = time.monotonic()
        for work in list(self.runs.values()):
            if work.task is not None:
                continue
            if work.state.status in RUN_TERMINAL:
                del self.runs[work.run_id]
                if work.worked:
                    log.info("worker %s: run %s is %s", self.name, work.run_id, work.state.status)
            elif work.live and work.partition not in self._catching_up and now >= work.not_before and work.missing():
                work.worked = True
                work.task = asyncio.create_task(self._work_on(work))

    async def _work_on(self, work: RunWork) -> None:
        try:
            if work.state.status == "pending":
                await self._send(work, "run_queued", work.run_id)
            if work.state.status in ("pending", "queued"):
                await self._send(work, "run_started", work.run_id, worker=self.name)
                log.info("worker %s: started run %s", self.name, work.run_id)
            for document_id, pass_index in work.missing():
                slot = await Slot.take(self._slots)
                if not self._may_start(work, document_id, pass_index):
                    slot.release()
                    if self._stopping.is_set() or not work.live:
                        break
                    continue
                self._start_pass(work, (document_id, pass_index), slot)
            await asyncio.gather(*work.jobs, return_exceptions=True)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("worker %s: run %s: could not emit; trying again shortly", self.name, work.run_id)
            work.not_before = time.monotonic() + 5
        finally:
            work.task = None

    def _start_pass(self, work: RunWork, key: PassKey, slot: Slot) -> None:
        work.in_flight.add(key)
        job = asyncio.create_task(self._run_pass(work, key, slot))
        work.jobs.add(job)

        def done(_: asyncio.Task) -> None:  # however the job ends, even cancelled before it began
            slot.release()
            work.in_flight.discard(key)
            work.jobs.discard(job)

        job.add_done_callback(done)

    def _may_start(self, work: RunWork, document_id: str, pass_index: int) -> bool:
        document = work.state.documents[document_id]
        return not self._stopping.is_set() and work.live and pass_index not in document.passes

    async def _run_pass(self, work: RunWork, key: PassKey, slot: Slot) -> None:
        """One trace per pass (events.trace.span): all its attempts' events carry it, and
        a block instrumented with OpenTelemetry runs inside its span."""
        attributes = {"runledger.run_id": work.run_id, "runledger.document_id": key[0], "runledger.pass_index": key[1]}
        with trace.span("runledger.pass", attributes):
            await self._run_pass_traced(work, key, slot)

    async def _run_pass_traced(self, work: RunWork, key: PassKey, slot: Slot) -> None:
        """Holds a slot while the block runs; waits out a retry's backoff without one."""
        attempt = work.retried.get(key, 0) + 1
        try:
            while await self._attempt(work, *key, attempt) == "retry":
                slot.release()
                await self._pause(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))
                await slot.acquire()
                if not self._may_start(work, *key):
                    return
                attempt += 1
            work.emitted.add(key)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("worker %s: run %s: could not emit the result of %s pass %s", self.name, work.run_id, *key)
            work.not_before = time.monotonic() + 5

    async def _attempt(self, work: RunWork, document_id: str, pass_index: int, attempt: int) -> str:
        """One call of the block and the fact it produces: 'done', 'failed' or 'retry'."""
        spec, run_id = work.state.spec, work.run_id
        inputs = work.state.documents[document_id].handle_inputs
        self.stats.started += 1
        began = time.monotonic()
        try:
            output = await call_block(self.block, spec["block_type"], dict(spec["block_config"]), dict(inputs),
                                      pass_index)
            problem = output_problem(spec["block_type"], output)
            if problem:
                raise InvalidOutput(problem)
        except Retryable as exc:
            final = attempt >= self.max_attempts
            await self._send(work, "pass_failed", run_id, document_id, pass_index, attempt=attempt,
                             message=_message(exc), code=exc.code or "retryable", final=final)
            self.stats.failed += final
            self.stats.retried += not final
            return "failed" if final else "retry"
        except Exception as exc:
            await self._send(work, "pass_failed", run_id, document_id, pass_index, attempt=attempt,
                             message=_message(exc), code=_code(exc), final=True)
            self.stats.failed += 1
            return "failed"
        duration_ms = int((time.monotonic() - began) * 1000)
        await self._send(work, "pass_completed", run_id, document_id, pass_index, output,
                         duration_ms=duration_ms, attempt=attempt)
        self.stats.completed += 1
        return "done"

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake when the worker is asked to stop."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def _send(self, work: RunWork, method: str, *args, **kwargs) -> None:
        """Emit through the producer of the run's organisation."""
        producer = self.producer if self.org_id is not None else await self.producer.for_org(work.state.org_id)
        await self._emit(getattr(producer, method), *args, **kwargs)

    async def _emit(self, send, *args, **kwargs) -> None:
        """Send through the producer (which retries transient errors itself). A 404 can
        mean the server has not yet projected a run this worker already read from the
        log: wait for it a little."""
        for delay in (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2):
            try:
                await send(*args, **kwargs)
                return
            except Exception as exc:
                if getattr(exc, "status", None) != 404:
                    raise
                await asyncio.sleep(delay)
        await send(*args, **kwargs)


def _message(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _code(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    return type(exc).__name__ if code is None else str(code)
