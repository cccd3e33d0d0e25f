"""A full disk under a running server, again and again (issue 18.5).

The ledger's storage lives on a small tmpfs: the embedded data directory (log, read model,
control store), or PostgreSQL's data directory (the log stays embedded, on another disk).
Passes are written over HTTP while a filler file takes the last byte of the filesystem,
several rounds in one story: fill, keep writing and reading, free the space, go on; every
other round the server is restarted once space is back. Every round ends the same way:
every acknowledged (2xx) pass is in the read model exactly once. Throughout, no answer is a
5xx but 503, every 503 error says `Retry-After`, reads keep working and `/healthz` (with or
without an admin key) says `storage_full`. At the end `runledger verify` is clean.

Each write carries a fresh `Idempotency-Key`, so the control store's writes (the key's
claim) meet the full disk too. A refused batch is sent again after space returns, as a
client honouring `Retry-After` would; passes have deterministic ids, so a batch sent twice
counts once.

Mounting needs root: elsewhere the test skips, saying so. Kafka is not tested here: a
broker whose disk fills stops (docs/operations.md, "A full disk").
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.conftest import BACKENDS
from tests.infra import postgres_server
from tests.server import ServerProcess, create_key

pytestmark = pytest.mark.timeout(600)

TENANT = "rl_full_disk_tenant"
DOCS, N, RUNS, BATCH = 40, 3, 3, 10
ROUNDS = 3
LABELS = ["invoice", "receipt"]


@contextlib.contextmanager
def small_filesystem(size_mb: int):
    """A fresh tmpfs of `size_mb` MiB, world-traversable (PostgreSQL's own user must reach
    it), unmounted and removed on the way out. Skips where mounting is not permitted."""
    if os.geteuid() != 0:
        pytest.skip("filling a small filesystem needs root (mount -t tmpfs); not root here")
    path = Path(tempfile.mkdtemp(prefix="runledger-full-", dir="/tmp"))
    path.chmod(0o755)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        path.rmdir()
        pytest.skip(f"mounting a tmpfs is not permitted here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)
        path.rmdir()


class Filler:
    """Takes every free byte of a filesystem, and gives them back."""

    def __init__(self, directory: Path):
        self.path = directory / "filler"

    def fill(self) -> None:
        fd = os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
        try:
            for chunk in (1 << 20, 1 << 12, 1 << 9):
                with contextlib.suppress(OSError):
                    while True:
                        os.write(fd, b"\0" * chunk)
        finally:
            os.close(fd)

    def free(self) -> None:
        self.path.unlink(missing_ok=True)


class Story:
    """The client side: what was sent, what was acknowledged, every status seen."""

    def __init__(self, server: ServerProcess, admin: str):
        self.server, self.admin = server, admin
        self.statuses: Counter = Counter()
        self.acked: set[tuple[str, str, int]] = set()
        self.refused: list[list[dict]] = []  # batches to send again once space is back

    def client(self, key: str = TENANT) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, headers={"Api-Key": key}, timeout=60)

    def answer(self, response: httpx.Response) -> httpx.Response:
        self.statuses[response.status_code] += 1
        assert response.status_code < 500 or response.status_code == 503, \
            f"{response.status_code}: {response.text[:500]}\n{self.server.log_tail()}"
        if response.status_code == 503 and "detail" in response.json():  # an error, not /healthz's verdict
            assert response.headers.get("retry-after"), response.text
            self.statuses[response.json()["detail"]["code"]] += 1
        return response

    def send(self, batch: list[dict]) -> int:
        with self.client() as client:
            response = self.answer(client.post("/v1/ledger/events", json={"events": batch},
                                               headers={"Idempotency-Key": uuid.uuid4().hex}))
        if response.status_code == 202:
            self.acked |= {(e["run_id"], e["payload"]["document_id"], e["payload"]["pass_index"]) for e in batch}
        elif response.status_code == 503:
            self.refused.append(batch)
        else:
            raise AssertionError(f"{response.status_code}: {response.text[:500]}")
        return response.status_code

    def read_while_full(self, run_id: str) -> None:
        with self.client() as client:
            assert self.answer(client.get(f"/v1/workflows/experiments/runs/{run_id}")).status_code == 200
            public = self.answer(client.get("/healthz", headers={"Api-Key": ""}))
            admin = self.answer(client.get("/healthz", headers={"Api-Key": self.admin}))
        assert public.status_code == 503 and "storage_full" in public.json()["reasons"], public.text
        assert any("storage full" in p for p in admin.json()["problems"]), admin.text

    def says_full(self) -> bool:
        with self.client() as client:
            public = self.answer(client.get("/healthz", headers={"Api-Key": ""}))
        return public.status_code == 503 and "storage_full" in public.json().get("reasons", [])

    def present_exactly_once(self, run_ids: list[str]) -> bool:
        """Every acknowledged pass accepted once in its run's history and shown completed."""
        with self.client() as client:
            for run_id in run_ids:
                history = self.answer(client.get(f"/v1/workflows/experiments/runs/{run_id}/events",
                                                 params={"order": "asc", "limit": 1000})).json()["data"]
                accepted = Counter((h["payload"]["document_id"], h["payload"]["pass_index"]) for h in history
                                   if h["type"] == "DocumentPassCompleted" and h["status"] == "accepted")
                assert all(count == 1 for count in accepted.values()), accepted
                results = self.answer(client.get("/v1/workflows/experiments/results",
                                                 params={"run_id": run_id, "limit": 1000})).json()["data"]
                shown = {(r["document_id"], int(i)) for r in results for i, p in r["passes"].items()
                         if p["status"] == "completed"}
                wanted = {(d, i) for r, d, i in self.acked if r == run_id}
                if not wanted <= set(accepted) or not wanted <= shown:
                    return False
        return True


def setup_runs(story: Story) -> list[tuple[str, list[str]]]:
    with story.client() as client:
        block = client.put("/v1/workflows/wf_full/blocks/classify", json={"type": "classifier",
                                                                          "config": {"labels": LABELS}})
        assert block.status_code in (200, 201), block.text
        documents = [{"handle_inputs": {"doc": {"type": "json", "data": {"n": i}}}} for i in range(DOCS)]
        experiment = client.post("/v1/workflows/experiments", json={
            "workflow_id": "wf_full", "block_id": "classify", "documents": documents, "n_consensus": N,
            "name": "full disk"})
        assert experiment.status_code in (200, 201, 202), experiment.text
        runs = []
        for _ in range(RUNS):
            run = client.post("/v1/workflows/experiments/runs", json={"experiment_id": experiment.json()["id"]})
            assert run.status_code in (200, 201, 202), run.text
            results = client.get("/v1/workflows/experiments/results", params={"run_id": run.json()["id"],
                                                                             "limit": 1000}).json()["data"]
            runs.append((run.json()["id"], [r["document_id"] for r in results]))
    return runs


def batches_of(runs: list[tuple[str, list[str]]]) -> list[list[dict]]:
    passes = [{"type": "DocumentPassCompleted", "run_id": run_id,
               "payload": {"document_id": d, "pass_index": i, "output": {"category": LABELS[(j + i) % 2]}}}
              for i in range(N) for run_id, docs in runs for j, d in enumerate(docs)]
    return [passes[k:k + BATCH] for k in range(0, len(passes), BATCH)]


def wait_for(check, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def full_disk_story(server: ServerProcess, filler: Filler, every_round_refuses: bool) -> Story:
    """`every_round_refuses`: each round's writes meet the full disk (the embedded log's); on
    PostgreSQL a write may still fit in its files' free pages (a round may meet none: the
    server noticing the full disk is what every round checks, the refusals the whole story)."""
    story = Story(server, create_key(server, "default", admin=True))
    runs = setup_runs(story)
    run_ids = [run_id for run_id, _ in runs]
    todo = batches_of(runs)
    per_round = len(todo) // ROUNDS
    for round_ in range(ROUNDS):
        mine, todo = todo[:per_round], todo[per_round:]
        story.send(mine.pop(0))
        filler.fill()
        story.send(mine.pop(0))  # work for the projector, which meets the full disk (PostgreSQL's) with it
        wait_for(story.says_full, f"round {round_}: the server to notice the full disk")
        refusals = 0
        while mine and refusals < 3:  # keep writing until the full disk has refused three times
            refusals += story.send(mine.pop(0)) == 503
        assert refusals or not every_round_refuses, f"round {round_}: the full disk never refused a write ({story.statuses})"
        story.read_while_full(run_ids[0])
        filler.free()
        if round_ % 2 == 1:
            server.stop()
            server.start()
        for batch in [*story.refused, *mine]:
            story.refused = [b for b in story.refused if b is not batch]
            assert story.send(batch) == 202
        wait_for(lambda: story.present_exactly_once(run_ids), f"round {round_}: every acknowledged pass")
    for batch in todo:
        story.send(batch)
    wait_for(lambda: story.present_exactly_once(run_ids), "the last passes")
    assert len(story.acked) == RUNS * DOCS * N and not story.refused
    return story


def verify_clean(server: ServerProcess) -> None:
    out = subprocess.run([sys.executable, "-m", "services.cli", "verify", "--json", "--data-dir",
                          str(server.data_dir)], env=server.env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]


def lived_through(server: ServerProcess, disk: Path, every_round_refuses: bool = True) -> Story:
    """The full-disk story told to a server, which is then stopped and verified clean."""
    try:
        server.start()
        story = full_disk_story(server, Filler(disk), every_round_refuses)
    finally:
        server.stop()
    verify_clean(server)
    return story


def test_an_embedded_data_directory_filled_again_and_again_loses_nothing(tmp_path):
    with small_filesystem(48) as disk:
        env = {"RUNLEDGER_BOOTSTRAP_KEY": TENANT, "RUNLEDGER_WAIT_TIMEOUT": "5", "RUNLEDGER_DATABASE_URL": "",
               "RUNLEDGER_KAFKA_BOOTSTRAP": ""}
        server = ServerProcess(disk / "data", env)
        server.log_path = tmp_path / "server.log"  # not on the full disk: its lines tell what happened
        story = lived_through(server, disk)
    print(f"\nembedded: {dict(story.statuses)}")
    assert story.statuses[503] >= 3 * ROUNDS


@pytest.mark.postgres
@pytest.mark.skipif("postgres" not in BACKENDS, reason="needs RUNLEDGER_TEST_BACKENDS=postgres")
def test_postgresql_on_a_full_disk_again_and_again_loses_nothing(tmp_path):
    with small_filesystem(96) as disk:
        with postgres_server(disk) as url:  # its data directory on the small filesystem
            env = {"RUNLEDGER_BOOTSTRAP_KEY": TENANT, "RUNLEDGER_WAIT_TIMEOUT": "5",
                   "RUNLEDGER_DATABASE_URL": url, "RUNLEDGER_KAFKA_BOOTSTRAP": ""}
            story = lived_through(ServerProcess(tmp_path / "data", env), disk,  # the embedded log on another disk
                                  every_round_refuses=False)
    print(f"\npostgres: {dict(story.statuses)}")
    assert story.statuses[503] >= ROUNDS  # refused, if not in every round
