"""A hostile tenant and an unlucky operator, against real servers (issue 8 findings 2, 4, 5, 6, 9):
bodies limited before they are read, the key checked first; a command whose events
were appended never answers a 5xx; Idempotency-Key; revocation on every replica;
cursors that survive their row; data files only their owner can read."""
from __future__ import annotations

import select
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from retab import Retab

from tests.e2e.conftest import KEY, http
from tests.server import create_key
from tests.server import ServerProcess

DOC = {"handle_inputs": {"doc": {"type": "json", "data": {"text": "invoice 1"}}}}


def wait_until(condition, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout}s")


def settled(client: httpx.Client, response: httpx.Response) -> httpx.Response:
    """Wait (bounded) until the projection shows a write, even one answered 202."""
    response.raise_for_status()
    token = response.headers.get("x-runledger-position", "")
    wait_until(lambda: client.get("/v1/ledger/whoami", headers={"x-runledger-position": token}).status_code == 200,
               timeout=60, what="the write visible")
    return response


def setup(client: httpx.Client, workflow: str = "wf") -> str:
    settled(client, client.put(f"/v1/workflows/{workflow}/blocks/b", json={"type": "classifier", "config": {}}))
    exp = client.post("/v1/workflows/experiments", json={"workflow_id": workflow, "block_id": "b", "documents": [DOC]})
    return settled(client, exp).json()["id"]


def raw_exchange(server: ServerProcess, head: str, chunks=(), timeout: float = 30.0) -> bytes:
    """Send a request head, then body chunks while the server has not answered; return
    what the server answered (its status line and headers at least)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    answer = b""
    try:
        sock.sendall(head.encode())
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered: stop sending
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        while b"\r\n\r\n" not in answer or len(answer) < _expected_length(answer):
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            answer += data
    finally:
        sock.close()
    return answer


def _expected_length(answer: bytes) -> int:
    head, _, _ = answer.partition(b"\r\n\r\n")
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return len(head) + 4 + int(line.split(b":")[1])
    return 0


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


# -- finding 2: request size, and the key before the body ------------------------------

@pytest.fixture
def small_limit_server(tmp_path):
    env = {"RUNLEDGER_BOOTSTRAP_KEY": KEY, "RUNLEDGER_MAX_BODY_BYTES": str(64 * 1024)}
    with ServerProcess(tmp_path / "server", env) as process:
        yield process


def test_a_huge_body_with_a_wrong_key_is_refused_before_it_is_sent(server):
    head = ("POST /v1/ledger/events HTTP/1.1\r\nHost: x\r\nApi-Key: wrong\r\nContent-Type: application/json\r\n"
            f"Content-Length: {150 * 1024 * 1024}\r\n\r\n")
    answer = raw_exchange(server, head)  # not one byte of the 150 MB is sent: the 401 cannot have waited for it
    assert status_of(answer) == 401 and b'"unauthorized"' in answer
    with_key = raw_exchange(server, head.replace("Api-Key: wrong", f"Api-Key: {KEY}"))
    assert status_of(with_key) == 413 and b'"payload_too_large"' in with_key
    assert http(server).get("/healthz").status_code == 200


def test_a_chunked_body_is_counted_as_it_streams_and_refused_past_the_limit(small_limit_server):
    head = ("POST /v1/ledger/events HTTP/1.1\r\nHost: x\r\nApi-Key: " + KEY +
            "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    piece = b"x" * 16384
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    answer = raw_exchange(small_limit_server, head, [chunk] * 2048)  # would be 32 MiB
    assert status_of(answer) == 413
    small = http(small_limit_server).post("/v1/ledger/events", content=b"x" * (64 * 1024 + 1),
                                          headers={"content-type": "application/json"})
    assert small.status_code == 413 and small.json()["detail"]["details"]["limit_bytes"] == 64 * 1024
    within = http(small_limit_server).post("/v1/ledger/events", json={"events": []})
    assert within.status_code == 422  # under the limit, the body is read and validated as usual
    assert http(small_limit_server).get("/healthz").status_code == 200


# -- finding 4 / issue 9 finding 5: appended means never a retry-inviting 5xx ----------

def test_a_command_the_projection_has_not_shown_yet_answers_202_and_the_sdk_creates_one_run(tmp_path):
    env = {"RUNLEDGER_BOOTSTRAP_KEY": KEY, "RUNLEDGER_WAIT_TIMEOUT": "1"}
    with ServerProcess(tmp_path / "server", env) as server:
        client = http(server)
        experiment_id = setup(client)
        held = sqlite3.connect(server.data_dir / "readmodel.db", timeout=30)
        held.execute("BEGIN IMMEDIATE")  # a backup or VACUUM holding the read model's write lock
        try:
            response = client.post("/v1/workflows/experiments/runs", json={"experiment_id": experiment_id})
            assert response.status_code == 202, response.text
            assert response.headers["x-runledger-visible"] == "false"
            assert response.headers["x-runledger-position"]
            run = response.json()
            assert run["id"].startswith("run_") and run["experiment_id"] == experiment_id
            assert run["lifecycle"]["status"] in ("pending", "queued")

            sdk = Retab(api_key=KEY, base_url=server.url, max_retries=3)  # retries 5xx: it must not need to
            sdk_run = sdk.workflows.experiments.runs.create(experiment_id=experiment_id)
            renamed = client.patch(f"/v1/workflows/experiments/{experiment_id}", json={"name": "renamed"})
            assert renamed.status_code == 202 and renamed.json()["name"] == "renamed"
        finally:
            held.rollback()
            held.close()
        wait_until(lambda: client.get(f"/v1/workflows/experiments/runs/{sdk_run.id}").status_code == 200,
                   what="the run visible once the lock is released")
        listed = client.get("/v1/workflows/experiments/runs", params={"experiment_id": experiment_id}).json()
        assert sorted(r["id"] for r in listed["data"]) == sorted([run["id"], sdk_run.id])  # no retry made a third
        # the rename is on the experiment's partition, the runs on theirs: it shows once that one is projected
        token = {"x-runledger-position": renamed.headers["x-runledger-position"]}
        wait_until(lambda: client.get(f"/v1/workflows/experiments/{experiment_id}", headers=token).json()["name"]
                   == "renamed", what="the rename visible once the lock is released")


def test_an_idempotency_key_answers_the_first_answer_and_never_runs_twice(server):
    client = http(server)
    experiment_id = setup(client)
    body = {"experiment_id": experiment_id}
    first = client.post("/v1/workflows/experiments/runs", json=body, headers={"Idempotency-Key": "create-1"})
    again = client.post("/v1/workflows/experiments/runs", json=body, headers={"Idempotency-Key": "create-1"})
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"] and again.headers["idempotent-replayed"] == "true"
    assert again.headers["x-runledger-position"] == first.headers["x-runledger-position"]

    other = client.post("/v1/workflows/experiments/runs", json={**body, "trigger_type": "other"},
                        headers={"Idempotency-Key": "create-1"})
    assert other.status_code == 422 and other.json()["detail"]["code"] == "idempotency_key_reused"
    stranger = http(server, create_key(server, "other-org"))  # keys are per organisation
    assert stranger.post("/v1/workflows/experiments/runs", json=body,
                         headers={"Idempotency-Key": "create-1"}).status_code == 404

    def send(_):
        return client.post("/v1/workflows/experiments/runs", json=body, headers={"Idempotency-Key": "burst"})

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(8)))
    assert {a.status_code for a in answers} <= {201, 409}
    created = {a.json()["id"] for a in answers if a.status_code == 201}
    assert len(created) == 1
    assert send(0).json()["id"] in created
    runs = client.get("/v1/workflows/experiments/runs", params={"experiment_id": experiment_id, "limit": 50})
    assert len(runs.json()["data"]) == 2  # create-1 and burst: one run each

    bad = client.post("/v1/workflows/experiments/runs", json=body, headers={"Idempotency-Key": "x" * 300})
    assert bad.status_code == 422

    other_experiment = client.post("/v1/workflows/experiments", json={"workflow_id": "wf", "block_id": "b"}).json()
    delete = f"/v1/workflows/experiments/{other_experiment['id']}"
    gone = [client.delete(delete, headers={"Idempotency-Key": "delete-1"}) for _ in range(2)]
    assert [g.status_code for g in gone] == [204, 204] and gone[1].headers["idempotent-replayed"] == "true"


# -- finding 5: a revoked key is refused by every replica within seconds ------------------

def test_a_revoked_key_is_refused_by_every_replica(server_env, tmp_path):
    data = tmp_path / "shared"  # embedded: both replicas share the data directory; else the same database
    with ServerProcess(data, server_env) as one, ServerProcess(data, server_env) as two:
        key = create_key(one, "acme")
        for replica in (one, two):
            assert http(replica, key).get("/v1/ledger/whoami").json() == {"org_id": "acme"}
        done = subprocess.run([sys.executable, "-m", "services.cli", "keys", "revoke", key, "--data-dir", str(data)],
                              env=one.env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        for replica in (one, two):
            refused = wait_until(lambda: (r := http(replica, key).get("/v1/ledger/whoami")).status_code == 401 and r,
                                 timeout=10, what="the revoked key refused")
            assert "revoked" in refused.json()["detail"]["message"]
        assert http(two).get("/v1/ledger/whoami").status_code == 200  # other keys unaffected


# -- finding 6: every client mistake is a 4xx in the envelope ------------------------------

def assert_envelope(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert {"code", "message", "details"} <= set(detail)
    if code:
        assert detail["code"] == code
    return detail


def test_a_cursor_keeps_working_after_its_run_leaves_the_filter(server):
    client = http(server)
    experiment_id = setup(client)
    runs = [client.post("/v1/workflows/experiments/runs", json={"experiment_id": experiment_id}).json()["id"]
            for _ in range(3)]
    status = client.get(f"/v1/workflows/experiments/runs/{runs[0]}").json()["lifecycle"]["status"]
    params = {"experiment_id": experiment_id, "status": status, "limit": 1}
    page = client.get("/v1/workflows/experiments/runs", params=params).json()
    assert [r["id"] for r in page["data"]] == [runs[2]]
    client.post(f"/v1/workflows/experiments/runs/{runs[2]}/cancel").raise_for_status()  # leaves the filter
    following = client.get("/v1/workflows/experiments/runs", params={**params, "after": page["list_metadata"]["after"]})
    assert following.status_code == 200 and [r["id"] for r in following.json()["data"]] == [runs[1]]


def test_unknown_cursors_and_offsets_are_422(server):
    client = http(server)
    experiment_id = setup(client)
    run_id = client.post("/v1/workflows/experiments/runs", json={"experiment_id": experiment_id}).json()["id"]
    for path, params in (("/v1/workflows/experiments/runs", {}),
                         ("/v1/workflows/experiments", {"workflow_id": "wf"}),
                         ("/v1/workflows/experiments/results", {"run_id": run_id})):
        for cursor in ("no_such_row", "c1.!!!", "c1.WyJ4Il0"):
            for side in ("after", "before"):
                assert_envelope(client.get(path, params={**params, side: cursor}), 422, "invalid_cursor")
    client.post("/v1/workflows/experiments/runs", json={"experiment_id": experiment_id}).raise_for_status()
    runs_cursor = client.get("/v1/workflows/experiments/runs", params={"limit": 1}).json()["list_metadata"]["after"]
    assert_envelope(client.get("/v1/workflows/experiments/results", params={"run_id": run_id, "after": runs_cursor}),
                    422, "invalid_cursor")  # a cursor from another list: its key has another type
    past_the_last_utc_time = "c1.WyJ0IiwiOTk5OS0xMi0zMVQyMzo1OTo1OS0xNDowMCIsInIiXQ"  # 9999-12-31T23:59:59-14:00
    assert_envelope(client.get("/v1/workflows/experiments/runs", params={"after": past_the_last_utc_time}),
                    422, "invalid_cursor")
    for params in ({"from_date": "9999-12-31T23:59:59-14:00"}, {"to_date": "0001-01-01T00:00:00+14:00"}):
        assert_envelope(client.get("/v1/workflows/experiments/runs", params=params), 422, "invalid_request")
    for offset in ("-5", str(10**20), "abc"):
        assert_envelope(client.get(f"/v1/workflows/experiments/runs/{run_id}/events", params={"after": offset}),
                        422, "invalid_cursor")


def test_fastapi_validation_answers_in_the_envelope_and_the_sdk_reads_it(server):
    detail = assert_envelope(http(server).get("/v1/workflows/experiments/runs", params={"limit": 0}),
                             422, "invalid_request")
    assert detail["details"]["errors"][0]["loc"] == ["query", "limit"] and "limit" in detail["message"]
    from retab.exceptions import ValidationError

    sdk = Retab(api_key=KEY, base_url=server.url, max_retries=0)
    with pytest.raises(ValidationError) as raised:
        sdk.workflows.experiments.runs.create(experiment_id="")
    assert "experiment_id" in str(raised.value) and raised.value.code == "invalid_request"


HOSTILE_JSON = [
    b'{"type": "classifier", "config": {"k": NaN}}',
    b'{"type": "classifier", "config": {"k": Infinity}}',
    b'{"type": "classifier", "config": {"k": 1e999}}',
    b'{"type": "classifier", "config": {"k": "\\ud800"}}',
    b'{"type": "classifier", "config": {"\\udfff": 1}}',
    b'{"type": "classifier", "config": {"k": 18446744073709551616}}',
    b'{"type": "classifier", "config": {"k": ' + b"[" * 600 + b"]" * 600 + b"}}",
    b'{"type": "classifier", "config": {"k": ' + b"[" * 100000 + b"]" * 100000 + b"}}",
]


def test_hostile_json_is_a_4xx_never_a_500(server):
    client = http(server)
    for raw in HOSTILE_JSON:
        response = client.put("/v1/workflows/wf_hostile/blocks/b", content=raw,
                              headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500, (raw[:60], response.text[:500])
        assert {"code", "message", "details"} <= set(response.json()["detail"])
    for response in (client.get("/v1/workflows/experiments", params={"workflow_id": "a\x00b"}),
                     client.get("/v1/workflows/experiments/exp%00x"),
                     client.post("/v1/workflows/experiments/runs", json={"experiment_id": "exp\u0000x"}),
                     client.get("/v1/workflows/experiments/results", params={"run_id": "r\x00"})):
        assert 400 <= response.status_code < 500, response.text  # PostgreSQL text cannot hold NUL: never a 500
        assert {"code", "message", "details"} <= set(response.json()["detail"])
    nothing = client.post("/v1/workflows/experiments", json={"workflow_id": "wf_hostile", "block_id": "b"})
    assert_envelope(nothing, 404, "block_not_found")  # none of them defined the block
    assert client.get("/healthz").status_code == 200


# -- finding 9: data files only their owner can read --------------------------------------

def test_the_data_directory_and_its_files_are_private_whatever_the_umask(tmp_path):
    data = tmp_path / "data"
    env = {"RUNLEDGER_BOOTSTRAP_KEY": KEY}
    with ServerProcess(data, env) as server:  # started with this test process's umask (typically 022)
        client = http(server)
        setup(client)
        create_key(server, "acme")
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        files = [p for p in data.iterdir() if p.name.split(".")[0] in ("log", "readmodel", "control")]
        names = {p.name for p in files}
        assert {"log.db", "readmodel.db", "control.db", "log.db-wal", "readmodel.db-wal"} <= names, names
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, (path.name, oct(path.stat().st_mode))
