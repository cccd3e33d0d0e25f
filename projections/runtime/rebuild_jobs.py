"""`runledger rebuild --jobs N`: the replay's partitions spread over N processes.

Each job is a spawned process with a projector of its own (no consumer group: given
partitions), working in bulk (projections/runtime/bulk.py) from the new read-model
version's checkpoints until every partition it holds has passed the log's end as of the
rebuild's start; then it exits. The rebuild's own process watches them, reports progress
from the version's stored checkpoints, and afterwards goes on as a one-process rebuild does
(catching up with the live version, the switch, the linger) from where the jobs stopped.

A job killed by a signal (an out-of-memory kill, an operator's SIGKILL) is started again:
its flushes commit with their checkpoints, so it resumes at the last one and the rows come
out the same. A job that fails otherwise (a bug) fails the rebuild. Partitions are spread
by size, largest first, onto the job with the fewest events so far, and share the
catch-up's memory budgets (each job keeps 1/N of the cache and of the gathered records;
every job is also a whole process: ~130-200 MB before it holds anything). A job exits when
its parent does (services/fold_processes.exit_with_parent), so no replay outlives the command.
"""
from __future__ import annotations

import asyncio
import logging
import multiprocessing
from typing import Callable

from events.log import EventLog

log = logging.getLogger("runledger.rebuild")

RESTARTS = 3
"""Times a killed job is started again before the rebuild gives up."""

OpenLog = Callable[[], EventLog]
"""Builds the log (not started) in a job's process: picklable (a module-level function or a
functools.partial of one)."""


class JobFailed(RuntimeError):
    pass


def spread(target: dict[int, int], jobs: int) -> list[list[int]]:
    """Partitions per job, balanced by events (largest partition first)."""
    groups: list[list[int]] = [[] for _ in range(min(jobs, len(target)) or 1)]
    sizes = [0] * len(groups)
    for partition in sorted(target, key=lambda p: (-target[p], p)):
        least = sizes.index(min(sizes))
        groups[least].append(partition)
        sizes[least] += target[partition]
    return [sorted(g) for g in groups if g]


async def replay(open_log: OpenLog, location, target: dict[int, int], jobs: int,
                 tick: Callable[[], object], every: float = 0.5, bulk_options: dict | None = None) -> None:
    """Run the jobs until each has replayed its partitions up to `target`; `bulk_options`:
    the catch-up's (bulk.CatchUp's arguments), whose memory budgets the jobs share."""
    from projections.runtime import bulk

    groups = spread({p: end for p, end in target.items() if end}, jobs)
    bulk_options = dict(bulk_options or {})
    for name, default in (("cache_budget", bulk.CACHE_BUDGET), ("pending_bytes", bulk.PENDING_BYTES)):
        bulk_options[name] = bulk_options.get(name, default) // max(1, len(groups))
    context = multiprocessing.get_context("spawn")
    running = {i: _start(context, open_log, location, group, target, bulk_options) for i, group in enumerate(groups)}
    restarts = 0
    try:
        while running:
            await asyncio.sleep(every)
            await tick()
            for i, process in list(running.items()):
                if process.exitcode is None:
                    continue
                if process.exitcode == 0:
                    del running[i]
                elif process.exitcode < 0 and restarts < RESTARTS:
                    restarts += 1
                    log.warning("rebuild job %s (partitions %s) was killed (signal %s); starting it again",
                                i, groups[i], -process.exitcode)
                    running[i] = _start(context, open_log, location, groups[i], target, bulk_options)
                else:
                    raise JobFailed(f"rebuild job for partitions {groups[i]} failed (exit code {process.exitcode})")
    finally:
        for process in running.values():
            if process.exitcode is None:
                process.kill()
            process.join(5)


def _start(context, open_log: OpenLog, location, partitions: list[int], target: dict[int, int], bulk_options: dict):
    until = {p: target[p] for p in partitions}
    process = context.Process(target=_job, args=(open_log, location, partitions, until, bulk_options), daemon=False,
                              name=f"runledger-rebuild-{partitions}")
    process.start()
    return process


def _job(open_log: OpenLog, location, partitions: list[int], until: dict[int, int], bulk_options: dict) -> None:
    from services.fold_processes import exit_with_parent  # noqa: PLC0415 - in the job's process only

    exit_with_parent()
    raise SystemExit(asyncio.run(_project(open_log, location, partitions, until, bulk_options)))


async def _project(open_log: OpenLog, location, partitions: list[int], until: dict[int, int],
                   bulk_options: dict) -> int:
    from projections.runtime import bulk, versions
    from projections.runtime.projector import Projector

    event_log = open_log()
    await event_log.start()
    engine = versions.open_engine(location)
    projector = Projector(event_log, engine, catch_up=bulk.CatchUp(**bulk_options))
    task = asyncio.create_task(projector.run(partitions=partitions))
    try:
        while True:
            await asyncio.sleep(0.1)
            if task.done():
                task.result()
                return 1
            statuses = [projector.partitions.get(p) for p in partitions]
            if any(s is not None and s.stopped for s in statuses):
                log.error("rebuild job stopped: %s", {p: s.stopped for p, s in projector.partitions.items()})
                return 1
            if all(s is not None and s.next_offset >= until[p] for p, s in zip(partitions, statuses)):
                return 0
    finally:
        projector.stop()
        await asyncio.wait_for(task, 60)
        await engine.dispose()
        await event_log.close()
