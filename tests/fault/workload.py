"""A workload with a known outcome, for fault tests: runs whose counters are ground truth,
split in two halves so a fault can be injected between them, plus the replay check."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from events.codec import encode
from events.log import Message
from projections.runtime.projector import Projector
from projections.store import views
from tests.builders import RunScript
from tests.state_hash import state_hashes


@dataclass
class Workload:
    scripts: list[RunScript]
    first: list
    second: list

    @classmethod
    def build(cls, runs: int = 6, docs: int = 3, n: int = 3, tag: str = "f") -> Workload:
        """Every other run has a document whose passes all fail; the second half resends
        a few passes of the first (a worker's retry: duplicates the fold must ignore)."""
        scripts, first, second = [], [], []
        for i in range(runs):
            script = RunScript(run_id=f"run_{tag}{i}", docs=docs, n=n)
            scripts.append(script)
            passes = [script.failed(d, p) if i % 2 == 0 and d == "doc_0" else script.passed(d, p)
                      for d in script.doc_ids for p in range(n)]
            half = len(passes) // 2
            first += [script.created(), script.started(), *passes[:half]]
            second += [*passes[half:], *passes[:2]]
        return cls(scripts, first, second)

    def expected(self, i: int) -> tuple:
        failing = i % 2 == 0
        docs = len(self.scripts[i].doc_ids)
        return ("completed", docs - failing, int(failing), docs)


async def append(log, events) -> list:
    return await log.append([Message(e.aggregate_id, encode(e)) for e in events])


async def assert_ground_truth(engine, workload: Workload) -> None:
    async with engine.connect() as conn:
        for i, script in enumerate(workload.scripts):
            run = await views.get_run_any(conn, script.run_id)
            got = (run.status, run.completed_document_count, run.error_count, run.document_count)
            assert got == workload.expected(i), f"{script.run_id}: {got} != {workload.expected(i)}"


async def assert_equals_a_clean_replay(log, live_engine, replay_engine, until) -> None:
    """Project the same log from offset 0 into an empty model: every table equal."""
    projector = Projector(log, replay_engine)
    task = asyncio.create_task(projector.run())
    try:
        for position in until:
            assert await projector.wait(position, 60), f"the replay did not reach {position}"
    finally:
        projector.stop()
        await asyncio.wait_for(task, 30)
    assert await state_hashes(replay_engine) == await state_hashes(live_engine)


async def assert_survived(log, live_engine, replay_engine, workload: Workload, positions) -> None:
    """How every fault story ends: the counters are the workload's ground truth and the
    live model equals a clean replay of the same log. Closes the log and both engines."""
    try:
        await assert_ground_truth(live_engine, workload)
        await assert_equals_a_clean_replay(log, live_engine, replay_engine, positions)
    finally:
        await live_engine.dispose()
        await replay_engine.dispose()
        await log.close()


async def wait_until(condition, what: str, timeout: float = 60) -> None:
    """Poll `condition()` (sync) until true; fail naming `what` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
