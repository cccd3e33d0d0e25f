"""Blue-green rebuild: replay the log from offset 0 into a new read-model version while
the live one keeps serving and projecting, then make the new one active.

1. register version N+1 (`building`) and create its tables;
2. project every partition into it with an ordinary `Projector` (no group, so the live
   group is untouched), in bulk while it is behind (projections/runtime/bulk.py: flushes
   written with COPY, aggregates kept between flushes within a memory budget); with
   `jobs` > 1 the partitions are first replayed up to the log's end in that many processes
   (projections/runtime/rebuild_jobs.py), and this process goes on from there;
3. once it has reached both the log's end as of the start and every checkpoint of the
   live version, flip the pointer (`versions.activate`);
4. keep projecting until the old version has stopped moving for `linger` seconds
   (every live projector has followed the switch and writes the new version now).

Replicas and projectors follow the pointer by themselves (`projections.runtime.follow`).
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from events.log import EventLog
from projections.runtime import bulk, checkpoints, rebuild_jobs, versions
from projections.runtime.projector import BATCH_SIZE, Projector

log = logging.getLogger("runledger.rebuild")


class RebuildFailed(RuntimeError):
    pass


@dataclass
class Progress:
    version: int
    phase: str  # replaying | switching | following | done
    applied: dict[int, int] = field(default_factory=dict)  # the new version's next offsets
    target: dict[int, int] = field(default_factory=dict)  # log end as of the start
    live: dict[int, int] = field(default_factory=dict)  # the live version's checkpoints
    rate: float = 0.0  # events/s, smoothed

    @property
    def done_events(self) -> int:
        return sum(self.applied.values())

    @property
    def total_events(self) -> int:
        return max(sum(self.target.values()), sum(self.live.values()))

    @property
    def eta(self) -> float | None:
        left = self.total_events - self.done_events
        return left / self.rate if self.rate > 0 and left > 0 else (0.0 if left <= 0 else None)

    def lag_behind_live(self) -> dict[int, int]:
        return {p: max(0, self.live.get(p, 0) - self.applied.get(p, 0)) for p in sorted(self.target)}


Report = Callable[[Progress], None]


async def rebuild(log: EventLog, control: AsyncEngine, base_url: str, report: Report | None = None,
                  tick: float = 0.5, linger: float = 3.0, batch_size: int = BATCH_SIZE, jobs: int = 1,
                  open_log: rebuild_jobs.OpenLog | None = None, bulk_options: dict | None = None) -> Progress:
    """`jobs` > 1 replays in that many processes first; they open the log with `open_log`.
    `bulk_options`: the catch-up's flush size and memory budget (bulk.CatchUp's arguments)."""
    bulk_options = bulk_options or {}
    if jobs > 1 and open_log is None:
        raise ValueError("a rebuild in several processes needs open_log, to open the log in each")
    location = await versions.create_version(control, base_url)
    engine = versions.open_engine(location)
    live_location = versions.locate(base_url, await versions.active_version(control))
    live_engine = versions.open_engine(live_location)
    try:
        await versions.prepare(location, engine)
        progress = Progress(location.version, "replaying", target=await log.end_offsets())
        if jobs > 1:
            await _replay_in_jobs(open_log, location, engine, live_engine, progress, report, jobs, tick, bulk_options)
        projector = Projector(log, engine, batch_size=batch_size, catch_up=bulk.CatchUp(**bulk_options))
        task = asyncio.create_task(projector.run(partitions=list(range(log.partitions))))
        try:
            await _replay(projector, task, live_engine, progress, report, tick)
            progress.phase = "switching"
            _report(report, progress)
            await versions.activate(control, location.version)
            progress.phase = "following"
            await _linger(projector, task, live_engine, progress, report, tick, linger)
            progress.phase = "done"
            _report(report, progress)
            return progress
        finally:
            projector.stop()
            await asyncio.wait_for(task, 30)
    finally:
        await engine.dispose()
        await live_engine.dispose()


async def _replay_in_jobs(open_log, location, engine, live_engine, progress: Progress, report, jobs: int,
                          tick: float, bulk_options: dict) -> None:
    async def measured() -> None:
        async with engine.connect() as conn:
            applied = await checkpoints.load(conn, "main")
        await _measure(progress, applied, live_engine, tick)
        _report(report, progress)

    try:
        await rebuild_jobs.replay(open_log, location, progress.target, jobs, measured, every=tick,
                                  bulk_options=bulk_options)
    except rebuild_jobs.JobFailed as exc:
        raise RebuildFailed(str(exc)) from None


async def _measure(progress: Progress, applied: dict[int, int], live_engine, seconds: float) -> None:
    before = progress.done_events
    progress.applied = applied
    async with live_engine.connect() as conn:
        progress.live = await checkpoints.load(conn, "main")
    rate = (progress.done_events - before) / max(1e-6, seconds)
    progress.rate = rate if progress.rate == 0 else 0.7 * progress.rate + 0.3 * rate


async def _replay(projector, task, live_engine, progress: Progress, report, tick: float) -> None:
    while True:
        await _step(projector, task, live_engine, progress, tick)
        _report(report, progress)
        if _reached(progress.applied, progress.target) and _reached(progress.applied, progress.live):
            return


async def _linger(projector, task, live_engine, progress: Progress, report, tick: float, linger: float,
                  at_most: float = 120.0) -> None:
    """Keep the new version moving until the old one has been still for `linger` seconds
    (every live projector follows within about a second), or for `at_most` seconds: a
    projector that never follows (a process of an older release) must not hold the
    rebuild for ever; the followers that did switch project the new version anyway."""
    still_since, last, started = time.monotonic(), dict(progress.live), time.monotonic()
    while time.monotonic() - started < at_most:
        await _step(projector, task, live_engine, progress, tick)
        _report(report, progress)
        if progress.live != last:
            still_since, last = time.monotonic(), dict(progress.live)
        elif time.monotonic() - still_since >= linger and _reached(progress.applied, progress.live):
            return
    log.warning("the previous read-model version still moves after %ss: a projector has not followed the switch",
                at_most)


async def _step(projector: Projector, task: asyncio.Task, live_engine, progress: Progress, tick: float) -> None:
    started = time.monotonic()
    await asyncio.sleep(tick)
    if task.done():
        task.result()  # raises what stopped the projector
        raise RebuildFailed("the replaying projector ended early")
    stopped = {p: s.stopped for p, s in projector.partitions.items() if s.stopped}
    if stopped:
        raise RebuildFailed(f"replay stopped on a bug: {stopped}")
    applied = {p: s.next_offset for p, s in projector.partitions.items()}
    await _measure(progress, applied, live_engine, time.monotonic() - started)


def _reached(applied: dict[int, int], target: dict[int, int]) -> bool:
    return all(applied.get(p, 0) >= offset for p, offset in target.items())


def _report(report: Report | None, progress: Progress) -> None:
    if report is not None:
        report(progress)
