"""Workers against a live server: runs go from queued to done with no hand-written events.

Workers read the server's log (the embedded file, or Kafka) and emit over HTTP.
The block functions below record each call in a file, so a test can count them,
also for workers running as separate `runledger worker` processes.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

from events.log import partition_for
from events.producer import Producer
from services.bootstrap import build_log
from services.settings import Settings
from services.worker.blocks import Retryable
from services.worker.harness import GROUP, Worker
from tests.e2e.conftest import KEY, http
from tests.waiting import wait_for

CALLS_ENV = "RUNLEDGER_TEST_BLOCK_CALLS"
STALL_ENV = "RUNLEDGER_TEST_STALL_AFTER"  # a worker whose passes hang after this many calls
_calls_made = itertools.count(1)
WORKFLOW, BLOCK = "wf_workers", "extract"


# -- block functions (also loaded by `runledger worker --block tests.e2e.test_worker:...`) --

def record_call(handle_inputs: dict, pass_index: int) -> None:
    data = handle_inputs["doc"]["data"]
    line = json.dumps({"pid": os.getpid(), "batch": data["batch"], "n": data["n"], "pass": pass_index,
                       "at": time.time()})
    with open(os.environ[CALLS_ENV], "a") as calls:
        calls.write(line + "\n")


def steady_block(block_type: str, config: dict, handle_inputs: dict, pass_index: int) -> dict:
    """A slow, sync block: 0.15 s a pass (with STALL_ENV set, passes past that many never end:
    the worker is then certain to hold unfinished work when it is killed)."""
    record_call(handle_inputs, pass_index)
    stall_after = int(os.environ.get(STALL_ENV, "0"))
    time.sleep(600 if stall_after and next(_calls_made) > stall_after else 0.15)
    return {"total": handle_inputs["doc"]["data"]["n"] * 10, "pass_seen": pass_index % 2}


def calls(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# -- helpers ---------------------------------------------------------------------------

def define_block(server) -> None:
    with http(server) as client:
        assert client.put(f"/v1/workflows/{WORKFLOW}/blocks/{BLOCK}",
                          json={"type": "extract", "config": {}}).status_code in (200, 201)


def start_run(server, batch: int, documents: int, n: int = 3) -> tuple[str, list[str]]:
    """An experiment of its own (documents tagged with `batch`) and one run of it."""
    docs = [{"handle_inputs": {"doc": {"type": "json", "data": {"batch": batch, "n": i}}}} for i in range(documents)]
    with http(server) as client:
        experiment = client.post("/v1/workflows/experiments", json={
            "workflow_id": WORKFLOW, "block_id": BLOCK, "documents": docs, "n_consensus": n, "name": f"b{batch}"})
        assert experiment.status_code == 201, experiment.text
        run = client.post("/v1/workflows/experiments/runs", json={"experiment_id": experiment.json()["id"]})
        assert run.status_code == 201, run.text
        run_id = run.json()["id"]
        results = client.get("/v1/workflows/experiments/results", params={"run_id": run_id, "limit": 100}).json()
    return run_id, [r["document_id"] for r in results["data"]]


def get_run(server, run_id: str) -> dict:
    return http(server).get(f"/v1/workflows/experiments/runs/{run_id}").json()


def wait_until_finished(server, run_id: str, timeout: float = 90) -> dict:
    return wait_for(lambda: get_run(server, run_id),
                    lambda r: r["lifecycle"]["status"] in ("completed", "error", "cancelled"), timeout)


def history(server, run_id: str) -> list[dict]:
    items, after = [], None
    while True:
        params = {"order": "asc", "limit": 100, **({"after": after} if after is not None else {})}
        page = http(server).get(f"/v1/workflows/experiments/runs/{run_id}/events", params=params).json()
        items += page["data"]
        after = page["list_metadata"]["after"]
        if after is None:
            return items


def accepted(items: list[dict], event_type: str) -> list[dict]:
    return [i for i in items if i["type"] == event_type and i["status"] == "accepted"]


def worker_settings(server) -> Settings:
    return Settings.from_env(server.env).with_(data_dir=server.data_dir)


class InProcess:
    """A Worker (Python API) reading the server's log and emitting over HTTP."""

    def __init__(self, server, block, **options):
        self.server, self.block, self.options = server, block, options

    async def __aenter__(self) -> Worker:
        self.log = build_log(worker_settings(self.server))
        await self.log.start()
        self.producer = Producer.over_http(self.server.url, KEY, producer="test-worker")
        await self.producer.start()
        self.worker = Worker(self.block, self.producer, self.log, org_id="default", **self.options)
        self.task = asyncio.create_task(self.worker.run())
        return self.worker

    async def __aexit__(self, *exc) -> None:
        self.worker.stop()
        await asyncio.wait_for(self.task, 30)
        await self.producer.close()
        await self.log.close()


def spawn_worker(server, calls_path: Path, concurrency: int, straight_to_kafka: bool = False,
                 stall_after: int = 0) -> subprocess.Popen:
    """`runledger worker`, emitting over HTTP, or (with Kafka) straight to the topic."""
    env = {**server.env, CALLS_ENV: str(calls_path), "RUNLEDGER_API_KEY": KEY, STALL_ENV: str(stall_after)}
    emit = ["--api-url", server.url]
    if straight_to_kafka:
        emit = ["--kafka-bootstrap", server.env["RUNLEDGER_KAFKA_BOOTSTRAP"], "--org", "default"]
    log_path = server.data_dir / f"worker-{time.monotonic_ns()}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "worker", "--block", "tests.e2e.test_worker:steady_block", *emit,
             "--data-dir", str(server.data_dir), "--concurrency", str(concurrency)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    proc.log_path = log_path
    return proc


def wait_until_sharing(server, workers: list[subprocess.Popen]) -> None:
    """Every worker has joined the group and, on the embedded log, holds a share of it."""
    wait_for(lambda: [w.log_path.read_text() for w in workers],
             lambda logs: all(": assigned partitions [" in text for text in logs))
    if "RUNLEDGER_KAFKA_BOOTSTRAP" in server.env:
        return

    def shares():
        with closing(sqlite3.connect(server.data_dir / "log.db")) as db:
            return [c for (c,) in db.execute('SELECT claimed FROM group_members WHERE "group" = ?', (GROUP,))]
    wait_for(shares, lambda claims: len(claims) == len(workers) and all(claims))


def worker_logs(workers: list[subprocess.Popen]) -> str:
    return "\n".join(f"--- worker {w.pid}:\n" + w.log_path.read_text()[-3000:] for w in workers)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- the stories -------------------------------------------------------------------------

def test_two_workers_share_runs_and_one_killed_mid_run_loses_and_doubles_nothing(server, tmp_path):
    define_block(server)
    calls_path = tmp_path / "calls.jsonl"
    kafka = "RUNLEDGER_KAFKA_BOOTSTRAP" in server.env
    # The victim's passes hang after its third call, so that, however slow this machine is,
    # it holds work the survivor must take over when it is killed.
    workers = [spawn_worker(server, calls_path, 3, stall_after=3),
               spawn_worker(server, calls_path, 3, straight_to_kafka=kafka)]
    try:
        wait_until_sharing(server, workers)
        partitions = Settings.from_env(server.env).partitions
        runs, seen = {}, set()
        while len(runs) < 4 or len(seen) < partitions:  # a run in every partition: both workers get some
            run_id, docs = start_run(server, batch=len(runs), documents=3)
            runs[run_id] = docs
            seen.add(partition_for(run_id, partitions))

        by_pid = lambda: Counter(c["pid"] for c in calls(calls_path))  # noqa: E731
        victim = workers[0]
        # Each worker owns at least 3 runs (27 passes): kill the victim once a pass of its
        # hangs (its fourth call), so that work of its is certainly left for the survivor.
        wait_for(by_pid, lambda c: len(c) == 2 and c[victim.pid] >= 4, timeout=60)
        victim.kill()  # SIGKILL: passes in flight die with it, no goodbye to the group
        victim.wait()
        before_kill = [c for c in calls(calls_path) if c["pid"] == victim.pid]

        for run_id, docs in runs.items():
            done = wait_until_finished(server, run_id)
            assert done["lifecycle"]["status"] == "completed", (done, worker_logs(workers))
            counts = (done["total_document_count"], done["completed_document_count"], done["document_count"],
                      done["error_count"])
            assert counts == (3, 3, 3, 0), done
            facts = accepted(history(server, run_id), "DocumentPassCompleted")
            per_document = Counter(f["payload"]["document_id"] for f in facts)
            assert per_document == {d: 3 for d in docs}  # exactly n_consensus facts per document
            assert len({(f["payload"]["document_id"], f["payload"]["pass_index"]) for f in facts}) == 9

        survivor = workers[1].pid
        taken_over = {c["batch"] for c in before_kill} & {c["batch"] for c in calls(calls_path) if c["pid"] == survivor}
        assert taken_over, ("the survivor should have finished some of the killed worker's runs",
                            worker_logs(workers))
        assert workers[1].poll() is None
    finally:
        for proc in workers:
            stop(proc)


async def test_a_retryable_failure_is_retried_with_attempt_numbers_until_it_succeeds(server):
    define_block(server)
    run_id, docs = start_run(server, batch=0, documents=2)
    tries: Counter = Counter()

    def flaky(block_type, config, handle_inputs, pass_index):
        key = (handle_inputs["doc"]["data"]["n"], pass_index)
        tries[key] += 1
        if tries[key] <= 2:
            raise Retryable(f"rate limited (try {tries[key]})", code="rate_limited")
        return {"n": key[0]}

    async with InProcess(server, flaky, backoff=0.05, max_attempts=3, concurrency=4):
        done = await asyncio.to_thread(wait_until_finished, server, run_id)
    assert done["lifecycle"]["status"] == "completed" and done["error_count"] == 0
    results = http(server).get("/v1/workflows/experiments/results", params={"run_id": run_id}).json()["data"]
    assert [r["attempt"] for r in results] == [3, 3]
    items = history(server, run_id)
    retries = accepted(items, "DocumentPassFailed")
    assert sorted((r["payload"]["attempt"], r["payload"]["final"]) for r in retries) == [(1, False)] * 6 + [(2, False)] * 6
    assert retries[0]["payload"]["error"] == {"message": "rate limited (try 1)", "code": "rate_limited"}
    assert {f["payload"]["attempt"] for f in accepted(items, "DocumentPassCompleted")} == {3}
    assert set(tries.values()) == {3}


async def test_blocks_that_keep_failing_give_document_errors_and_a_run_in_error(server):
    define_block(server)
    mixed_id, mixed_docs = start_run(server, batch=1, documents=3)
    doomed_id, _ = start_run(server, batch=2, documents=2)

    def broken(block_type, config, handle_inputs, pass_index):
        data = handle_inputs["doc"]["data"]
        if data["batch"] == 2:
            raise Retryable("model overloaded")
        if data["n"] == 0:
            raise ValueError("unreadable scan")  # not retryable: a final failure at once
        return {"n": data["n"]}

    async with InProcess(server, broken, backoff=0.02, max_attempts=3):
        mixed = await asyncio.to_thread(wait_until_finished, server, mixed_id)
        doomed = await asyncio.to_thread(wait_until_finished, server, doomed_id)

    assert mixed["lifecycle"]["status"] == "completed"
    assert (mixed["completed_document_count"], mixed["error_count"]) == (2, 1)
    results = http(server).get("/v1/workflows/experiments/results", params={"run_id": mixed_id}).json()["data"]
    failed = [r for r in results if r["lifecycle"]["status"] == "error"]
    assert len(failed) == 1 and "unreadable scan" in json.dumps(failed[0])
    assert failed[0]["attempt"] == 1

    assert doomed["lifecycle"]["status"] == "error"
    assert doomed["lifecycle"]["message"] == "all 2 documents failed"
    assert (doomed["completed_document_count"], doomed["error_count"]) == (0, 2)
    finals = [f for f in accepted(history(server, doomed_id), "DocumentPassFailed") if f["payload"]["final"]]
    assert len(finals) == 6 and {f["payload"]["attempt"] for f in finals} == {3}


async def until_released(worker, run_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while run_id in worker.runs:
        assert time.monotonic() < deadline, "the worker never let go of the cancelled run"
        await asyncio.sleep(0.05)


async def test_cancel_stops_new_passes_promptly_and_the_run_ends_cancelled(server, tmp_path):
    define_block(server)
    run_id, _ = start_run(server, batch=3, documents=6)
    started: list[float] = []

    async def slow(block_type, config, handle_inputs, pass_index):
        started.append(time.time())
        await asyncio.sleep(1.0)
        return {"n": handle_inputs["doc"]["data"]["n"]}

    concurrency = 2
    async with InProcess(server, slow, concurrency=concurrency) as worker:
        while len(started) < 3:
            await asyncio.sleep(0.05)
        response = await asyncio.to_thread(
            lambda: http(server).post(f"/v1/workflows/experiments/runs/{run_id}/cancel", json={"reason": "enough"}))
        cancelled_at = time.time()
        assert response.status_code == 200 and response.json()["lifecycle"]["status"] == "cancelled"
        await until_released(worker, run_id)  # after this no pass of the run can start
        late = [t for t in started if t > cancelled_at]
        assert len(late) <= concurrency, late  # at most the slots freed before the worker read the cancel
        assert len(started) < 18
        assert run_id not in worker.runs  # the worker let go of the run
    done = get_run(server, run_id)
    assert done["lifecycle"] == {"status": "cancelled", "reason": "enough"}
    rejected = [i for i in history(server, run_id) if i["status"] == "rejected"]
    assert all(i["reason"] == "run is cancelled" for i in rejected)  # in-flight passes that finished late


def test_whoami_names_the_keys_organisation(server):
    assert http(server).get("/v1/ledger/whoami").json() == {"org_id": "default"}
    assert http(server, key="nope").get("/v1/ledger/whoami").status_code == 401


def test_a_worker_pointed_at_no_log_says_so(tmp_path):
    out = subprocess.run([sys.executable, "-m", "services.cli", "worker", "--block",
                          "services.worker.demo_block:demo_block", "--data-dir", str(tmp_path / "nowhere")],
                         capture_output=True, text=True, timeout=60,
                         env={k: v for k, v in os.environ.items() if k != "RUNLEDGER_KAFKA_BOOTSTRAP"})
    assert out.returncode == 2
    assert "no embedded log" in out.stderr and "runledger serve" in out.stderr


def test_the_demo_runs_against_a_live_server_and_ends_with_a_score(server):
    out = subprocess.run(
        [sys.executable, "-m", "services.cli", "demo", "--api-url", server.url, "--data-dir", str(server.data_dir),
         "--documents", "4", "--pace", "0.3"],
        env={**server.env, "RUNLEDGER_API_KEY": KEY, "COLUMNS": "120"}, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "completed" in out.stdout and "4 of 4 documents scored" in out.stdout
    assert "score (consensus agreement, 0..1):" in out.stdout
    runs = http(server).get("/v1/workflows/experiments/runs").json()["data"]
    assert len(runs) == 1 and runs[0]["lifecycle"]["status"] == "completed" and 0 < runs[0]["score"] < 1
