"""`runledger rebuild --jobs N` (projections/runtime/rebuild_jobs.py): the partitions
replayed in N processes give the rows one process gives, and a job killed in the middle
(SIGKILL, mid-flush) is started again and resumes from its committed flushes to the same
rows, on SQLite and PostgreSQL."""
from __future__ import annotations

import functools
import multiprocessing
import os
import signal

import pytest

from events.sqlite_log import SqliteEventLog
from projections.runtime import rebuild, versions
from projections.runtime.projector import Projector
from projections.store.state_hash import state_hashes
from tests.builders import RunScript
from tests.integration.test_bulk import all_rows, append, project_all
from tests.integration.test_versions import control_engine  # noqa: F401  (a fixture)

PARTITIONS = 4


def open_log(path) -> SqliteEventLog:
    return SqliteEventLog(path, partitions=PARTITIONS)


@pytest.fixture
async def log_path(tmp_path):
    """A log of 40 runs of 8 documents x 3 passes, projected into the live version (1)."""
    path = tmp_path / "log.db"
    log = open_log(path)
    await log.start()
    events = []
    for r in range(40):
        script = RunScript(run_id=f"run_{r}", docs=8, n=3, block_type="extract")
        events += [script.created(), script.started()]
        events += [script.passed(d, p, {"total": r * 10 + p % 2, "vendor": "acme"}) for d in script.doc_ids
                   for p in range(3)]
    await append(log, events)
    await log.close()
    return path


async def rebuilt(log_path, database_url, control, jobs: int, report=None, **options) -> dict:
    log = open_log(log_path)
    await log.start()
    try:
        progress = await rebuild.rebuild(log, control, database_url, report=report, tick=0.05, linger=0.0, jobs=jobs,
                                         open_log=functools.partial(open_log, log_path), bulk_options=options)
        engine = versions.open_engine(versions.locate(database_url, progress.version))
        try:
            return {"hashes": await state_hashes(engine), "rows": await all_rows(engine)}
        finally:
            await engine.dispose()
    finally:
        await log.close()


async def live_version(log_path, engine) -> None:
    log = open_log(log_path)
    await log.start()
    try:
        await project_all(log, engine, Projector(log, engine).catch_up, 2000)
    finally:
        await log.close()


async def test_two_jobs_rebuild_the_rows_one_process_rebuilds(log_path, database_url, engine, control_engine):  # noqa: F811
    await live_version(log_path, engine)
    one = await rebuilt(log_path, database_url, control_engine, 1)
    two = await rebuilt(log_path, database_url, control_engine, 2, flush_records=100)
    assert two == one
    assert one["hashes"]["event_index"][0] == 40 * (2 + 8 * 3)


async def test_a_job_killed_mid_flush_is_started_again_and_the_rows_come_out_the_same(
        log_path, database_url, engine, control_engine, caplog):  # noqa: F811
    await live_version(log_path, engine)
    reference = await rebuilt(log_path, database_url, control_engine, 1)
    killed = []

    def kill_a_job_once_it_has_committed(progress) -> None:
        jobs = multiprocessing.active_children()
        # any report between a job's first commit and the end (a loaded machine may report
        # seldom: a fixed window of events was missed)
        if not killed and jobs and progress.phase == "replaying" and 0 < progress.done_events < progress.total_events:
            os.kill(jobs[0].pid, signal.SIGKILL)
            killed.append(progress.done_events)

    after = await rebuilt(log_path, database_url, control_engine, 2, report=kill_a_job_once_it_has_committed,
                          flush_records=12)
    assert killed, "no job was killed mid-replay: the story proved nothing"
    assert "was killed (signal 9); starting it again" in caplog.text
    assert after == reference
