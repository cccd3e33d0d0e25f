"""A 3-node Kafka cluster losing brokers while passes are written over HTTP (issue 18.10).

A real `runledger serve` (API only) and two `runledger project` members run on a 3-node
KRaft cluster (topic with replication factor 3 and min.insync.replicas 2) and PostgreSQL.
Writers post passes continuously while the test SIGKILLs one broker and starts it again,
pauses another (SIGSTOP: it hangs, connections open) and resumes it, then SIGKILLs a
projector and starts a new one. Afterwards every pass the API acknowledged (202) is in the
read model, counted exactly once, `runledger verify` finds every run equal to the fold of
its own events, and no answer was a 5xx other than 503 (a client may retry a 503).
"""
from __future__ import annotations

import asyncio
import collections
import itertools
import os
import subprocess
import sys
import threading
import time
import uuid

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import BACKENDS, new_postgres_database
from tests.infra import kafka_cluster
from tests.projector_process import ProjectorProcess
from tests.server import ServerProcess
from tests.waiting import wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.timeout(600),
              pytest.mark.skipif(not {"kafka", "postgres"} <= BACKENDS,
                                 reason="needs RUNLEDGER_TEST_BACKENDS=kafka,postgres")]

KEY = "rl_test_key_cluster_org"
WORKFLOW, BLOCK = "wf_cluster", "extract"
RUNS, DOCUMENTS, N = 8, 30, 3
WRITERS = 4
PACE = 0.25  # seconds between a writer's posts: the passes last through every fault
GROUP = "cluster-projectors"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with kafka_cluster(tmp_path_factory.mktemp("cluster"), nodes=3) as running:
        yield running


class Writers:
    """Threads posting one pass each request, runs shared out among them; they note every
    answer and the passes acknowledged (202). A writer that has sent all its passes starts
    again from its first, as a producer retrying would: the resent facts must count once."""

    def __init__(self, url: str, runs: dict[str, list[str]]):
        self.url = url
        self.passes = [(run, doc, i) for run, docs in runs.items() for doc in docs for i in range(N)]
        self.acknowledged: set[tuple[str, str, int]] = set()
        self.acknowledged_at: list[float] = []
        self.answers: collections.Counter = collections.Counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._write, args=(self.passes[k::WRITERS],), daemon=True)
                         for k in range(WRITERS)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(120)

    def acks_since(self, moment: float) -> int:
        with self._lock:
            return sum(1 for at in self.acknowledged_at if at >= moment)

    def _write(self, passes: list[tuple[str, str, int]]) -> None:
        with httpx.Client(base_url=self.url, headers={"Api-Key": KEY}, timeout=90) as client:
            for run, doc, i in itertools.cycle(passes):
                if self._stop.is_set():
                    return
                event = {"type": "DocumentPassCompleted", "run_id": run,
                         "payload": {"document_id": doc, "pass_index": i, "output": {"total": i, "doc": doc}}}
                try:
                    status = client.post("/v1/ledger/events", json={"events": [event]}).status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__  # no answer: not acknowledged
                with self._lock:
                    self.answers[status] += 1
                    if status == 202:
                        self.acknowledged.add((run, doc, i))
                        self.acknowledged_at.append(time.monotonic())
                self._stop.wait(PACE)


def create_runs(url: str) -> dict[str, list[str]]:
    with httpx.Client(base_url=url, headers={"Api-Key": KEY}, timeout=60) as client:
        assert client.put(f"/v1/workflows/{WORKFLOW}/blocks/{BLOCK}",
                          json={"type": "extract", "config": {}}).status_code in (200, 201)
        docs = [{"handle_inputs": {"doc": {"type": "json", "data": {"n": d}}}} for d in range(DOCUMENTS)]
        experiment = client.post("/v1/workflows/experiments", json={
            "workflow_id": WORKFLOW, "block_id": BLOCK, "documents": docs, "n_consensus": N, "name": "cluster"})
        assert experiment.status_code == 201, experiment.text
        runs = {}
        for _ in range(RUNS):
            run = client.post("/v1/workflows/experiments/runs", json={"experiment_id": experiment.json()["id"]})
            assert run.status_code == 201, run.text
            results = client.get("/v1/workflows/experiments/results",
                                 params={"run_id": run.json()["id"], "limit": 100}).json()["data"]
            runs[run.json()["id"]] = [r["document_id"] for r in results]
    return runs


def completed_passes(url: str, runs: dict[str, list[str]]) -> set[tuple[str, str, int]]:
    """Every pass the read model shows as completed, as the API answers it."""
    found = set()
    with httpx.Client(base_url=url, headers={"Api-Key": KEY}, timeout=60) as client:
        for run in runs:
            results = client.get("/v1/workflows/experiments/results", params={"run_id": run, "limit": 100})
            for result in results.json()["data"]:
                found |= {(run, result["document_id"], int(i)) for i, p in result["passes"].items()
                          if p["status"] == "completed"}
    return found


async def accepted_pass_facts(database: str) -> collections.Counter:
    """How many times the projection accepted each (run, document, pass) fact."""
    from projections.store.database import make_engine

    engine = make_engine(database)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text(
                "SELECT aggregate_id, body->'payload'->>'document_id', (body->'payload'->>'pass_index')::int, "
                "count(*) FROM event_index WHERE type = 'DocumentPassCompleted' AND accepted GROUP BY 1, 2, 3"))
            return collections.Counter({(run, doc, i): count for run, doc, i, count in rows})
    finally:
        await engine.dispose()


async def topic_replication(bootstrap: str, topic: str) -> tuple[set[int], set[int], str]:
    """(the replica counts of the topic's partitions, their in-sync counts, its min.insync.replicas)."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        configs = {entry[0]: entry[1] for entry in response.resources[0][4]}
        partitions = described["partitions"]
        return ({len(p["replicas"]) for p in partitions}, {len(p["isr"]) for p in partitions},
                configs["min.insync.replicas"])
    finally:
        await admin.close()


def wait_until_in_sync(bootstrap: str, topic: str, timeout: float = 120) -> None:
    """Until every replica of every partition is in sync again (a restarted broker caught up)."""
    deadline = time.monotonic() + timeout
    while (in_sync := asyncio.run(topic_replication(bootstrap, topic))[1]) != {3}:
        assert time.monotonic() < deadline, f"replicas still out of sync after {timeout:g} s: {in_sync}"
        time.sleep(0.5)


class Timeline:
    """When each step ended, in seconds from the start: printed with the outcome (a story, not
    an assertion)."""

    def __init__(self):
        self.began, self.steps = time.monotonic(), []

    def __call__(self, step: str) -> float:
        now = time.monotonic()
        self.steps.append(f"{step} {now - self.began:.0f}s")
        return now

    def __str__(self) -> str:
        return ", ".join(self.steps)


def test_every_acknowledged_pass_survives_brokers_and_a_projector_failing(cluster, postgres_url, tmp_path):
    timeline = Timeline()
    database = asyncio.run(new_postgres_database(postgres_url))
    topic = f"cluster-{uuid.uuid4().hex[:10]}"
    env = {"RUNLEDGER_KAFKA_BOOTSTRAP": cluster.bootstrap, "RUNLEDGER_DATABASE_URL": database,
           "RUNLEDGER_TOPIC": topic, "RUNLEDGER_PARTITIONS": "6", "RUNLEDGER_REPLICATION_FACTOR": "3",
           "RUNLEDGER_BOOTSTRAP_KEY": KEY, "RUNLEDGER_WAIT_TIMEOUT": "30", "RUNLEDGER_HEARTBEAT_INTERVAL": "0.5"}
    server = ServerProcess(tmp_path / "api", env).start()
    projectors = [ProjectorProcess(f"projector{i}", env, GROUP, tmp_path) for i in range(2)]
    try:
        assert asyncio.run(topic_replication(cluster.bootstrap, topic)) == ({3}, {3}, "2")
        runs = create_runs(server.url)
        writers = Writers(server.url, runs)
        writers.start()
        timeline("processes up, runs created")
        try:
            time.sleep(5)
            cluster.nodes[1].kill()  # a crash: no controlled shutdown
            faults_began = timeline("broker 2 killed")
            time.sleep(10)
            cluster.nodes[1].start()  # back on its port and data; catches up as a follower
            timeline("started")
            wait_until_in_sync(cluster.bootstrap, topic)  # one broker away at a time: the promise of RF 3
            cluster.nodes[2].pause()  # hangs: connections stay open and nothing answers
            timeline("in sync, broker 3 paused")
            time.sleep(12)
            cluster.nodes[2].resume()
            wait_until_in_sync(cluster.bootstrap, topic)
            projectors[0].kill()
            projector_killed = timeline("resumed, in sync, a projector killed")
            projectors.append(ProjectorProcess("projector2", env, GROUP, tmp_path))
            wait_for(projectors[2].assignments, bool)  # the new member took partitions over
            timeline("its successor assigned")
            time.sleep(3)
        finally:
            writers.stop()
        acknowledged_during_faults = writers.acks_since(faults_began)
        acknowledged_at_the_end = writers.acks_since(projector_killed)

        shown = wait_for(lambda: completed_passes(server.url, runs), lambda found: writers.acknowledged <= found,
                         timeout=180)
        timeline("every acknowledged pass projected")
        accepted = asyncio.run(accepted_pass_facts(database))
        verify = subprocess.run([sys.executable, "-m", "services.cli", "verify", "--json"],
                                env={**os.environ, **env, "RUNLEDGER_DATA_DIR": str(tmp_path / "verify")},
                                capture_output=True, text=True, timeout=300)
        timeline("verified")
    finally:
        for projector in projectors:
            projector.close()
        server.stop()

    print(f"\n{len(writers.acknowledged)} passes acknowledged, {acknowledged_during_faults} answers 202 after the "
          f"first fault; answers: {dict(writers.answers)}\n{timeline}")
    assert len(writers.acknowledged) >= 100 and acknowledged_during_faults > 0 and acknowledged_at_the_end > 0
    assert {status for status in writers.answers if isinstance(status, int)} <= {202, 503}, writers.answers
    assert writers.acknowledged <= shown  # every acknowledged pass is in the read model...
    assert set(accepted) == shown and set(accepted.values()) == {1}  # ...and counted exactly once
    assert verify.returncode == 0, verify.stdout[-3000:] + verify.stderr[-3000:]
