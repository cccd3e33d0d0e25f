"""Verification jobs: a run refolded and compared with its rows, never on an API event loop.

Asked over HTTP (`POST /v1/ledger/runs/{id}/verifications`, services/api/routes/replay.py),
a verification is a job: a row in the control store (`verifications`), run by a worker
process of this API process (`RUNLEDGER_VERIFY_PROCESSES`, default 1, spawned on first
use, at the fold pool's lower CPU priority, ending with its parent:
services/fold_processes.py). The worker opens its own log reader and read-model
connection, verifies chunk by chunk (projections/runtime/verify.py: memory flat,
consensus and hashing in its own process, so they never hold the API's GIL) and writes
its progress and result to the row, which any API replica answers
(`GET /v1/ledger/verifications/{id}`). Not the projector's fold pool: a long
verification there would hold up every organisation's projection.

An organisation has at most one job queued or running (`active_org` is unique): the next
is refused (`Busy`, a 429 with `Retry-After`). The process that accepted a job keeps its
`heartbeat_at` fresh; a job whose heartbeat is older than `LEASE` (its API process died)
is failed as abandoned when it is next looked at, which frees its organisation.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.runtime import run_rows, verify, versions
from projections.store.control import verifications as jobs
from projections.store.database import make_engine

from . import fold_processes
from .settings import Settings
from .shutdown import Grace

log = logging.getLogger("runledger.verifications")

LEASE = 60.0
"""Seconds a job's heartbeat stays good: the accepting process refreshes it every LEASE / 4."""
PROGRESS_EVERY = 0.5
"""Seconds between two progress writes of a running job."""
ACTIVE = ("queued", "running")


class Busy(Exception):
    """The organisation already has a verification queued or running."""

    def __init__(self, verification_id: str, retry_after: int):
        super().__init__(f"verification {verification_id} of this organisation is still running")
        self.verification_id, self.retry_after = verification_id, retry_after


@dataclass
class Job:
    row: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        r = self.row
        return {
            "id": r["verification_id"], "object": "verification", "run_id": r["run_id"], "status": r["status"],
            "progress": {"events_done": r["events_done"], "events_total": r["events_total"]},
            "created_at": _iso(r["created_at"]), "started_at": _iso(r["started_at"]),
            "finished_at": _iso(r["finished_at"]), "error": r["error"],
            "result": orjson.loads(r["result"]) if r["result"] else None,
        }

    @property
    def done(self) -> bool:
        return self.row["status"] not in ACTIVE


class Verifications:
    """Starts and answers verification jobs for one API process."""

    def __init__(self, settings: Settings, control: AsyncEngine, version_of=lambda: 1):
        self.settings, self.control, self.version_of = settings, control, version_of
        self._pool: ProcessPoolExecutor | None = None
        self._running: dict[str, asyncio.Task] = {}

    async def start(self, org_id: str, run_id: str) -> Job:
        """Queue a verification of `run_id` (the caller has checked the run is theirs)."""
        now = _now()
        await self._free_abandoned(org_id, now)
        verification_id = "ver_" + uuid.uuid4().hex[:24]
        row = dict(verification_id=verification_id, org_id=org_id, run_id=run_id, status="queued",
                   active_org=org_id, events_total=None, events_done=0, created_at=now, started_at=None,
                   finished_at=None, heartbeat_at=now, result=None, error=None)
        try:
            async with self.control.begin() as conn:
                await conn.execute(insert(jobs).values(**row))
        except IntegrityError:
            raise await self._busy(org_id) from None
        self._running[verification_id] = asyncio.create_task(self._run(verification_id, run_id))
        return Job(row)

    async def get(self, verification_id: str) -> Job | None:
        async with self.control.connect() as conn:
            row = (await conn.execute(select(jobs).where(jobs.c.verification_id == verification_id))).first()
        if row is None:
            return None
        row = dict(row._mapping)
        if row["status"] in ACTIVE and row["heartbeat_at"] < _now() - timedelta(seconds=LEASE):
            await self._free_abandoned(row["org_id"], _now())
            return await self.get(verification_id)
        return Job(row)

    async def wait(self, verification_id: str, timeout: float) -> None:
        """Until this process's job is done, or `timeout` seconds."""
        task = self._running.get(verification_id)
        if task is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), timeout)

    async def close(self, grace: Grace) -> None:
        """Cancel this process's jobs (a job left `running` is failed as abandoned once its
        heartbeat is stale) and stop the workers within the shutdown grace."""
        for task in self._running.values():
            task.cancel()
        if self._pool is not None:
            await fold_processes.shut_down(self._pool, grace)

    # -- in this process ---------------------------------------------------------------

    async def _run(self, verification_id: str, run_id: str) -> None:
        """Hand the job to a worker and keep its heartbeat fresh until it ends; a worker
        that dies fails the job."""
        try:
            future = asyncio.wrap_future(self._workers().submit(
                run_job, self.settings, self.version_of(), verification_id, run_id))
            future.add_done_callback(_retrieved)  # cancelled at shutdown, its worker's end is no one's error
            while True:
                try:
                    await asyncio.wait_for(asyncio.shield(future), LEASE / 4)
                    return
                except asyncio.TimeoutError:
                    await self._update(verification_id, heartbeat_at=_now())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the worker died or refused: the job says why
            log.exception("verification %s failed", verification_id)
            await self._finish(verification_id, error=f"{type(exc).__name__}: {exc}")
        finally:
            self._running.pop(verification_id, None)

    def _workers(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max(1, self.settings.verify_processes),
                                             mp_context=multiprocessing.get_context("spawn"),
                                             initializer=fold_processes.started)
        return self._pool

    async def _finish(self, verification_id: str, error: str) -> None:
        await self._update(verification_id, status="failed", error=error[:2000], active_org=None,
                           finished_at=_now())

    async def _update(self, verification_id: str, **values) -> None:
        async with self.control.begin() as conn:
            await conn.execute(update(jobs).where(jobs.c.verification_id == verification_id).values(**values))

    async def _free_abandoned(self, org_id: str, now: datetime) -> None:
        """Fail the organisation's active job if no process keeps it alive any more."""
        async with self.control.begin() as conn:
            await conn.execute(update(jobs).where(
                jobs.c.active_org == org_id, jobs.c.heartbeat_at < now - timedelta(seconds=LEASE)).values(
                status="failed", error="abandoned: the process running it stopped", active_org=None, finished_at=now))

    async def _busy(self, org_id: str) -> Busy:
        async with self.control.connect() as conn:
            row = (await conn.execute(select(jobs).where(jobs.c.active_org == org_id))).first()
        if row is None:  # it finished meanwhile
            return Busy("(finished)", 1)
        return Busy(row.verification_id, _retry_after(row))


def _retrieved(future: asyncio.Future) -> None:
    """Marks a job's outcome as seen: when this process stops, the job's task is cancelled
    and its worker terminated, and asyncio would report the orphaned BrokenProcessPool."""
    if not future.cancelled():
        future.exception()


def _retry_after(row) -> int:
    """Seconds until the running job is likely done (1..60), from its pace so far."""
    if not row.events_total or not row.events_done or row.started_at is None:
        return 5
    elapsed = (_now() - row.started_at).total_seconds()
    left = elapsed / row.events_done * (row.events_total - row.events_done)
    return int(min(60, max(1, left + 1)))


# -- in a worker process ---------------------------------------------------------------

_LOOP: asyncio.AbstractEventLoop | None = None
_PARTS: dict[tuple, tuple] = {}


def run_job(settings: Settings, version: int, verification_id: str, run_id: str) -> None:
    """A worker process's entry point: verify, writing progress and the result to the job's row.
    One event loop per worker process, so its log reader and engines serve every job."""
    global _LOOP
    if _LOOP is None:
        _LOOP = asyncio.new_event_loop()
    _LOOP.run_until_complete(_job(settings, version, verification_id, run_id))


async def _job(settings: Settings, version: int, verification_id: str, run_id: str) -> None:
    log_, engine, control = await _parts(settings, version)
    last = [0.0]

    async def write(**values) -> None:
        async with control.begin() as conn:
            await conn.execute(update(jobs).where(jobs.c.verification_id == verification_id).values(**values))

    async def progress(done: int, total: int) -> None:
        if time.monotonic() - last[0] >= PROGRESS_EVERY or done == total:
            last[0] = time.monotonic()
            await write(events_done=done, events_total=total)

    try:
        async with engine.connect() as conn:
            await consistent(conn)
            await write(status="running", started_at=_now(), events_total=await run_rows.event_count(conn, run_id))
            check = await verify.verify_run(conn, log_, run_id, progress)
        await write(status="completed", result=orjson.dumps(check.as_json()).decode(), active_org=None,
                    finished_at=_now())
    except Exception as exc:  # noqa: BLE001 - recorded on the job
        await write(status="failed", error=f"{type(exc).__name__}: {exc}"[:2000], active_org=None, finished_at=_now())


async def consistent(conn) -> None:
    """Every read of the verification from one snapshot of the read model, so events the
    projector applies meanwhile cannot look like differences."""
    if conn.dialect.name == "postgresql":
        await conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    else:
        await conn.exec_driver_sql("BEGIN")  # a deferred read transaction: WAL keeps its snapshot


async def _parts(settings: Settings, version: int):
    key = (settings.read_model_url, settings.control_url, settings.kafka_bootstrap, settings.topic,
           str(settings.log_path), version)
    if key not in _PARTS:
        from .bootstrap import build_log  # the worker's own log reader

        log_ = build_log(settings)
        await log_.start()
        location = versions.locate(settings.read_model_url, version)
        _PARTS[key] = (log_, make_engine(location.url, schema=location.schema), make_engine(settings.control_url))
    return _PARTS[key]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
