"""`runledger rebuild` while the service serves: readers through the retab SDK and a writer
of passes keep going across the switch, and nothing fails, empties, regresses or double
counts; afterwards the new version equals a clean replay of the log, and keys made before
the rebuild still work."""
from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time

import pytest
from retab import Retab

from events.log import Position
from projections.runtime import versions
from projections.runtime.projector import Projector
from projections.store.database import create_schema, make_engine
from projections.store.state_hash import state_hashes
from services.bootstrap import build_log
from services.settings import Settings
from tests.e2e.conftest import KEY, http
from tests.server import create_key
from tests.e2e.test_sdk_scenario import setup_experiment
from tests.server import ServerProcess
from tests.waiting import wait_for

N = 3
DOCS = [{"handle_inputs": {"invoice": {"type": "json", "data": {"number": f"INV-{i}"}}}} for i in range(40)]
LABELS = ["invoice", "invoice", "receipt"]


def cli(server, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.cli", *args, "--data-dir", str(server.data_dir)],
                          env=server.env, capture_output=True, text=True, timeout=300)


def _pass(run_id: str, doc: str, i: int) -> dict:
    return {"type": "DocumentPassCompleted", "run_id": run_id,
            "payload": {"document_id": doc, "pass_index": i, "output": {"category": LABELS[i]}}}


class Traffic:
    """A writer posting one pass per request and a reader polling through the SDK."""

    def __init__(self, server, sdk: Retab, run_id: str, doc_ids: list[str]):
        self.server, self.sdk, self.run_id = server, sdk, run_id
        self.todo = [(d, i) for i in range(N) for d in doc_ids]
        self.acked: list[tuple[str, int]] = []
        self.errors: list[str] = []
        self.regressions: list[str] = []
        self.reads = 0
        self.writing_done = threading.Event()
        self.stop = threading.Event()
        self.rebuilding = threading.Event()
        self.rebuilt = threading.Event()
        self.acked_while_rebuilding = 0

    def write(self) -> None:
        """Slowly while the rebuild runs, keeping the last passes for after its switch."""
        with http(self.server) as client:
            for k, (doc, i) in enumerate(self.todo):
                if len(self.todo) - k <= 10:
                    self.rebuilt.wait(300)
                elif self.rebuilding.is_set() and not self.rebuilt.is_set():
                    time.sleep(0.1)
                try:
                    response = client.post("/v1/ledger/events", json={"events": [_pass(self.run_id, doc, i)]})
                except Exception as exc:  # noqa: BLE001 (recorded, asserted empty)
                    self.errors.append(f"write: {exc!r}")
                    continue
                if response.status_code == 202:
                    self.acked.append((doc, i))
                    if self.rebuilding.is_set() and not self.rebuilt.is_set():
                        self.acked_while_rebuilding += 1
                else:
                    self.errors.append(f"write: {response.status_code} {response.text[:200]}")
        self.writing_done.set()

    def read(self) -> None:
        seen = (0, 0)
        while not self.stop.is_set():
            try:
                run = self.sdk.workflows.experiments.runs.get(self.run_id)
                listed = self.sdk.workflows.experiments.runs.list(limit=50)
                self.sdk.workflows.experiments.metrics.get(run_id=self.run_id)
            except Exception as exc:  # noqa: BLE001
                self.errors.append(f"read: {exc!r}")
                continue
            self.reads += 1
            now = (run.document_count, run.completed_document_count)
            if now < seen or now[0] < seen[0] or now[1] < seen[1]:
                self.regressions.append(f"{seen} -> {now}")
            seen = (max(seen[0], now[0]), max(seen[1], now[1]))
            if not listed.data or self.run_id not in {r.id for r in listed.data}:
                self.regressions.append(f"runs.list lost the run: {[r.id for r in listed.data]}")


@pytest.fixture
def replica(server, tmp_path):
    """On Kafka, a second API replica (no projector) beside the server: it must follow the
    switch by itself too."""
    if "RUNLEDGER_KAFKA_BOOTSTRAP" not in server.env:
        yield None
        return
    with ServerProcess(tmp_path / "replica", {k: v for k, v in server.env.items()}) as process:
        yield process


@pytest.fixture
def projectors(server):
    """On Kafka, two more projector processes join the server's in-process one: the
    switch must be followed by every member of the group."""
    if "RUNLEDGER_KAFKA_BOOTSTRAP" not in server.env:
        yield []
        return
    logs = [open(server.data_dir / f"project-{k}.log", "ab") for k in range(2)]  # read when a test fails
    procs = [subprocess.Popen([sys.executable, "-m", "services.cli", "project", "--data-dir", str(server.data_dir)],
                              env=server.env, stdout=out, stderr=subprocess.STDOUT) for out in logs]
    yield procs
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for out in logs:
        out.close()


def test_rebuild_switches_under_load_and_equals_a_clean_replay(server, projectors, replica):
    sdk = Retab(api_key=KEY, base_url=server.url, max_retries=0)
    tenant_key = create_key(server, "org_b")
    experiment = setup_experiment(server, sdk, documents=DOCS, n=N)
    history = sdk.workflows.experiments.runs.create(experiment_id=experiment.id)  # a finished run to replay
    _complete(server, sdk, history.id)
    run = sdk.workflows.experiments.runs.create(experiment_id=experiment.id)
    doc_ids = [r.document_id for r in sdk.workflows.experiments.results.list(run_id=run.id, limit=100).data]

    traffic = Traffic(server, sdk, run.id, doc_ids)
    threads = [threading.Thread(target=traffic.write), threading.Thread(target=traffic.read)]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(traffic.acked), lambda n: n >= 5)
    traffic.rebuilding.set()
    rebuilt = cli(server, "rebuild", "--json")
    traffic.rebuilt.set()
    assert traffic.writing_done.wait(300), f"the writer is still writing: {len(traffic.acked)} acknowledged"
    done = wait_for(lambda: sdk.workflows.experiments.runs.get(run.id), lambda r: r.lifecycle.status == "completed")
    traffic.stop.set()
    for thread in threads:
        thread.join(60)

    assert rebuilt.returncode == 0, rebuilt.stderr
    assert json.loads(rebuilt.stdout)["version"] == 2
    assert traffic.errors == [] and traffic.regressions == []
    assert traffic.reads > 0 and len(traffic.acked) == len(traffic.todo)
    assert traffic.acked_while_rebuilding > 0
    admin = http(server, create_key(server, "ops", admin=True)).get("/v1/ledger/read-models").json()
    assert admin["serving_version"] == 2 and admin["active_version"] == 2
    if replica is not None:
        admin_key = create_key(server, "ops2", admin=True)
        wait_for(lambda: http(replica, admin_key).get("/v1/ledger/read-models").json()["serving_version"],
                 lambda version: version == 2)
        seen = Retab(api_key=KEY, base_url=replica.url, max_retries=0).workflows.experiments.runs.get(run.id)
        assert seen.completed_document_count == len(doc_ids)
    metrics = http(server).get("/metrics").text
    assert "runledger_read_model_serving_version 2.0" in metrics
    assert 'runledger_read_model_lag{status="retired",version="1"}' in metrics
    assert (done.document_count, done.completed_document_count) == (len(doc_ids), len(doc_ids))
    listing = json.loads(cli(server, "projections", "list", "--json").stdout)
    assert [(v["version"], v["status"]) for v in listing] == [(1, "retired"), (2, "active")]
    assert http(server, tenant_key).get("/v1/ledger/whoami").json()["org_id"] == "org_b"
    assert all(proc.poll() is None for proc in projectors)  # every group member lived through the switch
    assert asyncio.run(_live_and_replay_hashes(server)) is None


def _complete(server, sdk: Retab, run_id: str) -> None:
    docs = [r.document_id for r in sdk.workflows.experiments.results.list(run_id=run_id, limit=100).data]
    with http(server) as client:
        events = [_pass(run_id, d, i) for d in docs for i in range(N)]
        assert client.post("/v1/ledger/events", json={"events": events}).status_code == 202
    wait_for(lambda: sdk.workflows.experiments.runs.get(run_id), lambda r: r.lifecycle.status == "completed")


async def _live_and_replay_hashes(server) -> None:
    """The active version (2) against a fresh replay of the whole log, table by table."""
    settings = Settings.from_env(server.env).with_(data_dir=server.data_dir)
    log = build_log(settings)
    await log.start()
    live = versions.open_engine(versions.locate(settings.read_model_url, 2))
    replay = make_engine(f"sqlite+aiosqlite:///{server.data_dir / 'replay.db'}")
    try:
        await create_schema(replay)
        ends = await log.end_offsets()
        projector = Projector(log, replay)
        task = asyncio.create_task(projector.run(partitions=sorted(ends)))
        for partition, end in ends.items():
            if end:
                assert await projector.wait(Position(partition, end - 1), 60)
        projector.stop()
        await task
        assert await state_hashes(live) == await state_hashes(replay)
    finally:
        await log.close()
        await live.dispose()
        await replay.dispose()
