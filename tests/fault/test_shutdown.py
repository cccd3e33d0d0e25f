"""Every process exits within its shutdown grace after SIGTERM, whatever its dependencies do.

Each story starts a real process, takes a dependency away while it works (a SQLite file
locked by another process, the Kafka broker stopped or hung with SIGSTOP, PostgreSQL
stopped, the API killed), sends SIGTERM and checks three things: the process is gone
within the grace (`RUNLEDGER_SHUTDOWN_GRACE`, short here) plus a margin for delivering the
signal and reaping the process; it exits 0 (it stopped because it was asked to); and its
output has no "leaked semaphore" warning (every pool was shut down). This bounds a
condition; it measures no speed. Where the work left behind matters, the story also shows
that the next owner does it.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import BACKENDS, new_postgres_database
from tests.fault.workload import Workload
from tests.infra import kafka_broker, postgres_server, stop_postgres
from tests.projector_process import ProjectorProcess
from tests.server import ServerProcess
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(300)

GRACE = 5.0
MARGIN = 4.0  # delivering the signal, reaping the process, and a loaded machine's scheduling
KEY = "rl_test_key_shutdown_org"
WORKFLOW, BLOCK = "wf_stop", "extract"
ENV = {"RUNLEDGER_SHUTDOWN_GRACE": str(GRACE), "RUNLEDGER_HEARTBEAT_INTERVAL": "0.5",
       "RUNLEDGER_BOOTSTRAP_KEY": KEY, "RUNLEDGER_WAIT_TIMEOUT": "30"}
needs_kafka = pytest.mark.skipif(not {"kafka", "postgres"} <= BACKENDS,
                                 reason="needs RUNLEDGER_TEST_BACKENDS=kafka,postgres")


def assert_stops_within_the_grace(proc: subprocess.Popen, output, *others) -> None:
    """SIGTERM (to `proc` and to every (process, output) of `others` at once); then each is gone
    within GRACE + MARGIN of it, with exit code 0 and no leaked semaphore."""
    stopping = [(proc, output), *others]
    for process, _ in stopping:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + GRACE + MARGIN
    for process, read in stopping:
        try:
            code = process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail(f"still running {GRACE + MARGIN:g} s after SIGTERM (grace {GRACE:g} s):\n{read()[-4000:]}")
        text = read()
        assert code == 0, f"exit code {code} after SIGTERM:\n{text[-4000:]}"
        assert "leaked semaphore" not in text, text[-4000:]


class InFlight:
    """A POST in a thread of its own: the request a stopping server holds. `answer()`: its
    status, or None if the connection closed without one."""

    def __init__(self, url: str, path: str, body: dict):
        self.status: int | None = None
        self._thread = threading.Thread(target=self._post, args=(url + path, body), daemon=True)
        self._thread.start()
        time.sleep(1.0)  # on its way: in the append, or waiting for the projection

    def _post(self, url: str, body: dict) -> None:
        with contextlib.suppress(httpx.HTTPError):
            self.status = httpx.post(url, json=body, headers={"Api-Key": KEY}, timeout=120).status_code

    def answer(self) -> int | None:
        self._thread.join(30)
        return self.status


def in_flight(url: str, path: str, body: dict) -> InFlight:
    return InFlight(url, path, body)


def assert_cut_short_with_503(*requests: InFlight) -> None:
    """A request the stop cut short answers 503 (retry elsewhere or later), never uvicorn's 500."""
    answers = [request.answer() for request in requests]
    assert all(answer in (503, None) for answer in answers), answers


def define_block(url: str) -> None:
    answer = httpx.put(f"{url}/v1/workflows/{WORKFLOW}/blocks/{BLOCK}", json={"type": "extract", "config": {}},
                       headers={"Api-Key": KEY}, timeout=60)
    assert answer.status_code in (200, 201), answer.text


def experiment(name: str, documents: int = 2) -> dict:
    docs = [{"handle_inputs": {"doc": {"type": "json", "data": {"n": i}}}} for i in range(documents)]
    return {"workflow_id": WORKFLOW, "block_id": BLOCK, "documents": docs, "n_consensus": 3, "name": name}


def create_run(url: str, documents: int = 2) -> tuple[str, list[str]]:
    """A block, an experiment and a run of it: (run id, document ids)."""
    define_block(url)
    with httpx.Client(base_url=url, headers={"Api-Key": KEY}, timeout=60) as client:
        created = client.post("/v1/workflows/experiments", json=experiment("work", documents))
        run = client.post("/v1/workflows/experiments/runs", json={"experiment_id": created.json()["id"]})
        assert run.status_code == 201, run.text
        results = client.get("/v1/workflows/experiments/results", params={"run_id": run.json()["id"]}).json()
    return run.json()["id"], [r["document_id"] for r in results["data"]]


def a_pass(run_id: str, document_id: str) -> dict:
    """An ingestion body: one pass fact, as a worker reports it over HTTP."""
    return {"events": [{"type": "DocumentPassCompleted", "run_id": run_id,
                        "payload": {"document_id": document_id, "pass_index": 0, "output": {"total": 1}}}]}


@contextlib.contextmanager
def locked(path: Path):
    """Another process's write lock on a SQLite file (a backup, a VACUUM, a stuck tool)."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def started(args: list[str], env: dict, log_path: Path) -> tuple[subprocess.Popen, callable]:
    """`runledger ARGS...` with its output in a file; (process, output reader)."""
    out = open(log_path, "ab")
    proc = subprocess.Popen([sys.executable, "-m", "services.cli", *args], env={**os.environ, **env},
                            stdout=out, stderr=subprocess.STDOUT)
    out.close()
    return proc, lambda: log_path.read_text(errors="replace")


@contextlib.contextmanager
def killed_at_exit(proc: subprocess.Popen):
    try:
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
            proc.wait()


# -- the embedded default -------------------------------------------------------------

def test_serve_on_the_embedded_default_stops_while_its_sqlite_files_are_locked(tmp_path):
    """The embedded projector's batch waits on a locked read model, a command on a locked log."""
    server = ServerProcess(tmp_path / "srv", ENV)
    server.start()
    try:
        define_block(server.url)
        with locked(server.data_dir / "readmodel.db"):
            held = in_flight(server.url, "/v1/workflows/experiments", experiment("appended-then-held"))
            with locked(server.data_dir / "log.db"):
                never = in_flight(server.url, "/v1/workflows/experiments", experiment("never-appended"))
                assert_stops_within_the_grace(server.proc, server.log_tail)
        assert_cut_short_with_503(held, never)
    finally:
        server.stop()
    # The next owner projects what the stopped one left.
    with ServerProcess(tmp_path / "srv", ENV) as again:
        def names() -> list[str]:
            answer = httpx.get(f"{again.url}/v1/workflows/experiments", params={"workflow_id": WORKFLOW},
                               headers={"Api-Key": KEY})
            return [e["name"] for e in answer.json()["data"]]

        assert "appended-then-held" in wait_for(names, lambda found: "appended-then-held" in found)
        assert "never-appended" not in names()


def test_a_worker_stops_while_the_api_it_emits_to_hangs(tmp_path):
    """Passes finish while the server hangs (SIGSTOP): their facts wait on a server that never
    answers, and the worker's group, in the server's log file, may wait on its lock."""
    server = ServerProcess(tmp_path / "srv", ENV)
    server.start()
    worker, output = started(["worker", "--block", "tests.fault.blocks:slow_block", "--api-url", server.url,
                              "--api-key", KEY, "--data-dir", str(server.data_dir)], ENV, tmp_path / "worker.log")
    with killed_at_exit(worker):
        try:
            create_run(server.url, documents=20)
            wait_for(output, lambda text: "started run" in text)
            server.proc.send_signal(signal.SIGSTOP)
            time.sleep(1.5)  # the first passes end; their facts go to a server that does not answer
            assert_stops_within_the_grace(worker, output)
        finally:
            server.kill()


# -- Kafka and PostgreSQL ---------------------------------------------------------------
# Each story stops `serve` (API and its projector) and a `runledger project` member together,
# each on a read model of its own, while the same dependency is gone.

@pytest.fixture(scope="module")
def own_broker(tmp_path_factory):
    """A broker of this module's own: these stories stop and hang it."""
    with kafka_broker(tmp_path_factory.mktemp("kafka_stop")) as broker:
        broker.stopped_by_a_story = False
        yield broker


@pytest.fixture
def broker(own_broker):
    """The module's broker, running: a story that stopped it leaves the start to the next story
    that needs it (the last one to stop it, none)."""
    if own_broker.stopped_by_a_story:
        own_broker.start()
        own_broker.stopped_by_a_story = False
    return own_broker


@contextlib.contextmanager
def broker_away(broker, how: str):
    """The broker stopped (connections refused) or paused with SIGSTOP (nothing answers)."""
    if how == "stopped":
        broker.stop()
        broker.stopped_by_a_story = True
        yield
        return
    broker.pause()
    try:
        yield
    finally:
        broker.resume()


def kafka_env(bootstrap: str, database: str, topic: str | None = None) -> dict:
    return {**ENV, "RUNLEDGER_KAFKA_BOOTSTRAP": bootstrap, "RUNLEDGER_DATABASE_URL": database,
            "RUNLEDGER_TOPIC": topic or f"stop-{uuid.uuid4().hex[:10]}", "RUNLEDGER_PARTITIONS": "3"}


async def append_workload(bootstrap: str, topic: str) -> None:
    from events.kafka_log import KafkaEventLog
    from tests.fault.workload import append

    log = KafkaEventLog(bootstrap, topic=topic, partitions=3)
    await log.start()
    try:
        workload = Workload.build(runs=6, docs=3, tag=uuid.uuid4().hex[:4])
        await append(log, workload.first + workload.second)
    finally:
        await log.close()


@contextlib.contextmanager
def serve_and_project(tmp_path, serve_env: dict, project_env: dict):
    """`serve --with-projector` and a `runledger project` member, both up; stopped at exit."""
    server = ServerProcess(tmp_path / "srv", serve_env, ["--with-projector"])
    server.start()
    projector = ProjectorProcess("projector", project_env, f"g-{uuid.uuid4().hex[:8]}", tmp_path)
    try:
        wait_for(projector.assignments, bool)
        yield server, projector
    finally:
        projector.close()
        server.stop()


@pytest.mark.kafka
@pytest.mark.postgres
@needs_kafka
async def test_a_worker_stops_while_the_broker_hangs_and_its_passes_never_end(broker, tmp_path):
    """Straight to Kafka: runs read from the topic, facts produced to it; every pass hangs in a
    thread (a model call that never returns) and then the broker hangs (SIGSTOP)."""
    from events.codec import encode
    from events.kafka_log import KafkaEventLog
    from events.log import Message
    from tests.builders import RunScript

    topic = f"stop-{uuid.uuid4().hex[:10]}"
    log = KafkaEventLog(broker.bootstrap, topic=topic, partitions=3)
    await log.start()
    try:
        script = RunScript(run_id=f"run_{uuid.uuid4().hex[:6]}", docs=4, n=3, org_id="acme")
        await log.append([Message(script.run_id, encode(script.created()))])
    finally:
        await log.close()
    env = {**ENV, "RUNLEDGER_TOPIC": topic, "RUNLEDGER_PARTITIONS": "3"}
    worker, output = started(["worker", "--block", "tests.fault.blocks:stuck_block", "--kafka-bootstrap",
                              broker.bootstrap, "--org", "acme", "--concurrency", "4"], env, tmp_path / "worker.log")
    with killed_at_exit(worker):
        wait_for(output, lambda text: "started run" in text)
        with broker_away(broker, "paused"):
            time.sleep(1.0)
            assert_stops_within_the_grace(worker, output)


@pytest.mark.kafka
@pytest.mark.postgres
@needs_kafka
async def test_serve_and_a_projector_stop_while_postgres_is_stopped(broker, tmp_path):
    with postgres_server(tmp_path / "pg") as url:
        serve_env = kafka_env(broker.bootstrap, await new_postgres_database(url))
        project_env = kafka_env(broker.bootstrap, await new_postgres_database(url))
        with serve_and_project(tmp_path, serve_env, project_env) as (server, projector):
            define_block(server.url)
            stop_postgres(tmp_path / "pg")
            await append_workload(broker.bootstrap, project_env["RUNLEDGER_TOPIC"])  # batches that cannot commit
            in_flight(server.url, "/v1/workflows/experiments", experiment("no-read-model"))
            assert_stops_within_the_grace(server.proc, server.log_tail, (projector.proc, projector.text))


@pytest.mark.kafka
@pytest.mark.postgres
@needs_kafka
@pytest.mark.parametrize("how", ["paused", "stopped"])  # stopped last: nothing after it needs the broker
async def test_serve_and_a_projector_stop_while_the_broker_is_away(broker, request, tmp_path, how):
    postgres = request.getfixturevalue("postgres_url")
    serve_env = kafka_env(broker.bootstrap, await new_postgres_database(postgres))
    project_env = kafka_env(broker.bootstrap, await new_postgres_database(postgres))
    await append_workload(broker.bootstrap, project_env["RUNLEDGER_TOPIC"])
    with serve_and_project(tmp_path, serve_env, project_env) as (server, projector):
        run_id, documents = create_run(server.url)
        with broker_away(broker, how):
            ingestion = in_flight(server.url, "/v1/ledger/events", a_pass(run_id, documents[0]))  # in the send
            command = in_flight(server.url, "/v1/workflows/experiments", experiment("sent-to-no-broker"))
            assert_stops_within_the_grace(server.proc, server.log_tail, (projector.proc, projector.text))
            assert_cut_short_with_503(ingestion, command)
