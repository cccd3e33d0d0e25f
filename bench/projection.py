"""The runledger projector catching up on a filled log: events/s from first assignment
to the last event committed (with its checkpoint) in the read model.

"Consensus off" swaps the scorer for a constant, to show what the rest costs; the
read model is then checked to hold the constant, so the swap cannot silently miss
(e.g. if folding moves to another process).
"""
from __future__ import annotations

import asyncio
import time
from contextlib import contextmanager

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from events.log import EventLog
from projections.domain import fold
from projections.runtime.projector import BATCH_SIZE, Projector
from projections.store.database import make_engine, prepare_schema
from projections.store.tables import runs

CONSTANT_SCORE = 1.0


def constant_scorer(spec, votes):
    return CONSTANT_SCORE, {"targets": []}


@contextmanager
def consensus(on: bool):
    real = fold.score_document
    fold.score_document = real if on else constant_scorer
    try:
        yield
    finally:
        fold.score_document = real


async def catch_up(log: EventLog, url: str, expected: int, *, consensus_on: bool, group: str,
                   batch_size: int = BATCH_SIZE, profiler=None) -> float:
    """Seconds for one projector to apply `expected` events into a fresh read model at `url`."""
    engine = make_engine(url)
    await prepare_schema(url, engine)
    projector = Projector(log, engine, batch_size=batch_size)
    try:
        with consensus(consensus_on):
            elapsed = await _timed_run(projector, expected, group, profiler)
        if not consensus_on:
            await _check_constant_scores(engine)
        return elapsed
    finally:
        await engine.dispose()


async def _timed_run(projector: Projector, expected: int, group: str, profiler) -> float:
    task = asyncio.create_task(projector.run(group=group))
    try:
        while not projector.partitions:  # the clock starts once partitions are assigned
            await _check(task)
            await asyncio.sleep(0.001)
        started = time.perf_counter()
        if profiler:
            profiler.start()
        while projector.applied_total < expected:
            await _check(task)
            await asyncio.sleep(0.002)
        elapsed = time.perf_counter() - started
        if profiler:
            profiler.stop()
        stopped = [p for p, s in projector.partitions.items() if s.stopped]
        if stopped or projector.poison_total:
            raise RuntimeError(f"projector stopped partitions {stopped}, poison {projector.poison_total}")
        return elapsed
    finally:
        projector.stop()
        await asyncio.wait_for(task, 30)


async def _check(task: asyncio.Task) -> None:
    if task.done():
        task.result()
        raise RuntimeError("projector left its loop early")


async def _check_constant_scores(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        scores = set((await conn.execute(select(runs.c.score))).scalars())
    if scores - {CONSTANT_SCORE, None}:
        raise RuntimeError(f"consensus-off run scored {sorted(scores)[:5]}: the constant scorer was not used")
