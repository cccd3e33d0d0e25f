"""A projector process SIGKILLed at random points, 20 times in one stream.

Events keep arriving between kills; each new `runledger project` process resumes from the
checkpoints its killed predecessor committed. At the end an in-process projector catches
up, and the read model must hold exactly the workload's ground truth and equal a clean
replay of the same log: nothing lost, nothing counted twice, whatever a kill interrupted.
"""
from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import uuid

import pytest

from projections.runtime import checkpoints
from projections.runtime.projector import Projector
from projections.store.database import make_engine, prepare_schema
from tests.conftest import fresh_database_url, new_postgres_database, server_backends
from tests.fault.workload import Workload, append, assert_survived
from tests.projector_process import ASSIGNED

KILLS = 20
PARTITIONS = 3


@pytest.fixture(params=server_backends())
async def stream(request, tmp_path):
    """(log, env for `runledger project`, live read-model URL) on the chosen backend."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = {**os.environ, "RUNLEDGER_DATA_DIR": str(data_dir), "RUNLEDGER_PARTITIONS": str(PARTITIONS),
           "RUNLEDGER_HEARTBEAT_INTERVAL": "0.5"}
    if request.param == "embedded":
        from events.sqlite_log import SqliteEventLog
        log = SqliteEventLog(data_dir / "log.db", partitions=PARTITIONS)
        url = f"sqlite+aiosqlite:///{data_dir / 'readmodel.db'}"
        for name in ("RUNLEDGER_KAFKA_BOOTSTRAP", "RUNLEDGER_DATABASE_URL"):
            env.pop(name, None)
    else:
        from events.kafka_log import KafkaEventLog
        broker = request.getfixturevalue("kafka_bootstrap")
        topic = f"storm-{uuid.uuid4().hex[:10]}"
        log = KafkaEventLog(broker.bootstrap, topic=topic, partitions=PARTITIONS)
        url = await fresh_database_url("postgres", request, tmp_path)
        env.update(RUNLEDGER_KAFKA_BOOTSTRAP=broker.bootstrap, RUNLEDGER_TOPIC=topic, RUNLEDGER_DATABASE_URL=url)
    await log.start()
    yield log, env, url
    await log.close()


def start_projector(env: dict, group: str, log_path) -> subprocess.Popen:
    # A fresh group per process: the killed member's session never delays the next one;
    # the checkpoints, kept in the read model, are what carries over.
    return subprocess.Popen([sys.executable, "-m", "services.cli", "project", "--group", group],
                            env=env, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT)


async def test_a_projector_killed_20_times_mid_stream_loses_nothing_and_counts_nothing_twice(stream, tmp_path):
    log, env, url = stream
    workload = Workload.build(runs=24, docs=4, n=3, tag=f"k{uuid.uuid4().hex[:4]}")
    events = workload.first + workload.second
    # Consecutive slices of one sequence, so each run's events keep their order.
    chunks = [events[len(events) * i // KILLS: len(events) * (i + 1) // KILLS] for i in range(KILLS)]
    live = make_engine(url)
    await prepare_schema(url, live)
    rng = random.Random(20261129)
    output = tmp_path / "projectors.log"
    positions, killed_with_work_pending, killed_after_progress = [], 0, 0
    for i, chunk in enumerate(chunks):
        before = await _applied(live)
        process = start_projector(env, f"storm-{i}", output)
        await _until_assigned(output, i + 1, process)
        positions += await append(log, chunk)
        if i % 2:  # after its first commit: folding what is left, committing, or idle
            await until_moved(live, before, process)
            await asyncio.sleep(rng.uniform(0.0, 0.3))
        else:  # at once: fetching, folding or committing its first batch
            await asyncio.sleep(rng.uniform(0.0, 0.05))
        process.kill()
        assert process.wait(30) == -9, "the projector died before it was killed:\n" + \
            output.read_text(errors="replace")[-3000:]
        killed_with_work_pending += await _behind(live, log)
        killed_after_progress += await _applied(live) > before
    print(f"\n{killed_after_progress} of {KILLS} projectors committed before their kill, "
          f"{killed_with_work_pending} were killed with work pending")
    # Both kinds of kill must have happened, or the story proved nothing.
    assert killed_after_progress > 0 and killed_with_work_pending > 0

    await caught_up_and_survived(log, live, url, tmp_path, workload, positions, "storm-final")


async def caught_up_and_survived(log, live, url: str, tmp_path, workload: Workload, positions, group: str) -> None:
    """A last projector catches the read model up to `positions`; it must then hold the
    workload's ground truth and equal a clean replay of the log (`assert_survived`)."""
    catch_up = Projector(log, live)
    task = asyncio.create_task(catch_up.run(group=f"{group}-{uuid.uuid4().hex[:6]}"))
    try:
        for position in positions:
            assert await catch_up.wait(position, 120), f"the catch-up did not reach {position}"
    finally:
        catch_up.stop()
        await asyncio.wait_for(task, 60)
    replay_url = await _replay_url(url, tmp_path)
    replay = make_engine(replay_url)
    await prepare_schema(replay_url, replay)
    await assert_survived(log, live, replay, workload, positions)


async def _until_assigned(output, members: int, process, timeout: float = 60) -> None:
    """Until the `members`-th process has its partitions (each logs one assignment; the
    pattern is the projector's own line, not aiokafka's \"Revoking previously assigned
    partitions\", which would count a process still starting up)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(ASSIGNED.findall(output.read_text(errors="replace"))) < members:
        assert process.poll() is None, output.read_text(errors="replace")[-3000:]
        assert loop.time() < deadline, "a projector never got its partitions"
        await asyncio.sleep(0.02)


async def until_moved(engine, before: int, process, timeout: float = 60) -> None:
    """Until the committed checkpoints pass `before` (or the process ends, or `timeout`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while await _applied(engine) == before and loop.time() < deadline and process.poll() is None:
        await asyncio.sleep(0.01)


async def _applied(engine) -> int:
    async with engine.connect() as conn:
        return sum((await checkpoints.load(conn, "main")).values())


async def _behind(engine, log) -> int:
    """1 if the committed checkpoints had not reached the log's end when the kill came."""
    async with engine.connect() as conn:
        stored = await checkpoints.load(conn, "main")
    ends = await log.end_offsets()
    return int(any(stored.get(p, 0) < end for p, end in ends.items()))


async def _replay_url(url: str, tmp_path) -> str:
    if url.startswith("sqlite"):
        return f"sqlite+aiosqlite:///{tmp_path / 'replay.db'}"
    return await new_postgres_database(url)
