"""A projector catching up in bulk, SIGKILLed again and again in the middle of its flushes.

The whole workload is on the log before the first `runledger project` starts, so every
process starts far behind and works in bulk (flushes of 40 records here, so that kills land
inside them: decoding, folding, copying rows in, committing). Each new process resumes from
the checkpoints its killed predecessors committed. At the end an in-process projector
catches up, and the read model must hold the workload's ground truth and equal a clean
replay of the same log (batches only): nothing lost, nothing written twice.
"""
from __future__ import annotations

import asyncio
import random
import uuid

from projections.store.database import make_engine, prepare_schema
from tests.fault.test_sigkill_storm import (
    _applied, _until_assigned, caught_up_and_survived, start_projector, until_moved,
    stream,  # noqa: F401  (a fixture)
)
from tests.fault.workload import Workload, append

KILLS = 8


async def test_a_bulk_catch_up_killed_mid_flush_resumes_to_the_same_rows(stream, tmp_path):  # noqa: F811
    log, env, url = stream
    env = {**env, "RUNLEDGER_BULK_FLUSH_RECORDS": "40"}
    workload = Workload.build(runs=300, docs=6, n=3, tag=f"b{uuid.uuid4().hex[:4]}")  # 6,600 events: > 3 polls
    positions = await append(log, workload.first + workload.second)
    live = make_engine(url)
    await prepare_schema(url, live)
    rng = random.Random(20261205)
    output = tmp_path / "projectors.log"
    total, progressed, pending = len(workload.first) + len(workload.second), 0, 0
    for i in range(KILLS):
        before = await _applied(live)
        if before == total:
            break
        process = start_projector(env, f"bulk-{i}", output)
        await _until_assigned(output, i + 1, process)
        await until_moved(live, before, process)  # it committed a flush: the next one is under way
        await asyncio.sleep(rng.uniform(0.0, 0.15))  # decoding, folding, copying or committing it
        process.kill()
        assert process.wait(30) == -9, "the projector died before it was killed:\n" + \
            output.read_text(errors="replace")[-3000:]
        applied = await _applied(live)
        progressed += applied > before
        pending += applied < total
    print(f"\n{progressed} killed projectors had committed flushes, {pending} were killed with work pending")
    assert progressed >= 3 and pending >= 3, "the kills must land inside the catch-up"

    await caught_up_and_survived(log, live, url, tmp_path, workload, positions, "bulk-final")

