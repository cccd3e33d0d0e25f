"""`runledger serve --workers N`: several API processes on one port, the projector elsewhere."""
from __future__ import annotations

import subprocess
import sys
import uuid

import httpx
import pytest

from tests.conftest import BACKENDS, fresh_database_url
from tests.projector_process import ProjectorProcess
from tests.server import ServerProcess

KEY = "rl_test_key_workers"
PROCESS = "x-runledger-process"
POSITION = "x-runledger-position"
ATTEMPTS = 200  # fresh connections tried until both processes have answered


def test_workers_are_refused_on_the_embedded_default_with_the_reason(tmp_path):
    done = subprocess.run([sys.executable, "-m", "services.cli", "serve", "--workers", "2",
                           "--data-dir", str(tmp_path / "data")],
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "RUNLEDGER_KAFKA_BOOTSTRAP": "", "RUNLEDGER_DATABASE_URL": ""})
    assert done.returncode == 2
    assert "--workers 2: needs Kafka" in done.stderr
    assert not (tmp_path / "data").exists()  # refused before anything started


@pytest.mark.kafka
@pytest.mark.postgres
@pytest.mark.skipif(not {"kafka", "postgres"} <= BACKENDS, reason="needs RUNLEDGER_TEST_BACKENDS with kafka,postgres")
async def test_two_api_processes_share_the_port_and_serve_writes_and_reads(request, tmp_path):
    env = {"RUNLEDGER_BOOTSTRAP_KEY": KEY, "RUNLEDGER_WAIT_TIMEOUT": "30",
           "RUNLEDGER_DATABASE_URL": await fresh_database_url("postgres", request, tmp_path),
           "RUNLEDGER_KAFKA_BOOTSTRAP": request.getfixturevalue("kafka_bootstrap").bootstrap,
           "RUNLEDGER_TOPIC": f"workers-{uuid.uuid4().hex[:10]}"}
    server = ServerProcess(tmp_path / "server", env, ["--workers", "2"]).start(120)
    projector = ProjectorProcess("projector", env, "runledger-projector", tmp_path)
    try:
        with httpx.Client(base_url=server.url, headers={"Api-Key": KEY}, timeout=60) as client:
            assert client.put("/v1/workflows/wf/blocks/b", json={"type": "extract", "config": {}}).status_code == 201
        written: dict[str, str] = {}  # experiment id -> its position token
        writers: set[str] = set()
        for attempt in range(ATTEMPTS):
            if len(writers) == 2 and len(written) >= 4:
                break
            with httpx.Client(base_url=server.url, headers={"Api-Key": KEY}, timeout=60) as client:  # a new connection
                created = client.post("/v1/workflows/experiments",
                                      json={"workflow_id": "wf", "block_id": "b", "name": f"exp {attempt}"})
            assert created.status_code in (200, 201), created.text
            writers.add(created.headers[PROCESS])
            written[created.json()["id"]] = created.headers[POSITION]
        assert len(writers) == 2, f"one process answered {ATTEMPTS} connections: {writers}"

        readers: set[str] = set()
        for attempt in range(ATTEMPTS):
            experiment_id, token = list(written.items())[attempt % len(written)]
            with httpx.Client(base_url=server.url, headers={"Api-Key": KEY}, timeout=60) as client:
                read = client.get(f"/v1/workflows/experiments/{experiment_id}", headers={POSITION: token})
            assert read.status_code == 200, read.text  # read-your-writes across processes (NOTIFY wakes it)
            assert read.json()["id"] == experiment_id
            readers.add(read.headers[PROCESS])
            if len(readers) == 2 and attempt >= len(written):
                break
        assert len(readers) == 2
        assert readers == writers
        assert str(server.proc.pid) in readers  # the first process serves too, beside its sibling
        projector.check_alive()
    finally:
        server.stop()
        projector.stop()
        projector.close()
