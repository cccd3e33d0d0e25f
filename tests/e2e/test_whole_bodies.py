"""A request whose client went away before its body ended is never processed, and leaves
no idempotency record behind (issue 18, finding 7): the retry with the whole body runs
once. Over a raw socket, against a real server: half a body, then the connection closed."""
from __future__ import annotations

import re
import socket

import httpx

from tests.e2e.conftest import KEY, http
from tests.e2e.test_hardening import setup
from tests.waiting import wait_for

RUNS = "/v1/workflows/experiments/runs"


def posts_answered(server) -> float:
    """POST requests the server has finished with, whatever their answer (its /metrics)."""
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    return sum(float(value) for value in re.findall(
        r'^runledger_http_requests_total\{[^}]*method="POST"[^}]*\} (\S+)$', text, re.M))


def send_half_then_close(server, path: str, body: bytes, headers: dict[str, str]) -> None:
    """Announce the whole body, send its first half, and hang up."""
    head = "".join(f"{name}: {value}\r\n" for name, value in {
        "Host": "127.0.0.1", "Content-Type": "application/json", "Content-Length": str(len(body)),
        "Api-Key": KEY, **headers}.items())
    before = posts_answered(server)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\n{head}\r\n".encode() + body[:len(body) // 2])
    wait_for(lambda: posts_answered(server), lambda answered: answered > before, timeout=30)  # it has given up


def test_half_a_body_is_never_processed_and_the_whole_retry_runs_once(server):
    client = http(server)
    experiment_id = setup(client)
    # Half of this body is itself a whole JSON object: if a server took it, it would run.
    body = b'{"experiment_id": "%s"}' % experiment_id.encode() + b" " * 200

    send_half_then_close(server, RUNS, body, {})  # no Idempotency-Key: FastAPI's body reader
    send_half_then_close(server, RUNS, body, {"Idempotency-Key": "whole-or-nothing"})
    listed = client.get(RUNS, params={"experiment_id": experiment_id}).json()["data"]
    assert listed == []

    retry = client.post(RUNS, content=body, headers={"Idempotency-Key": "whole-or-nothing",
                                                     "Content-Type": "application/json"})
    assert retry.status_code in (201, 202), retry.text
    assert "idempotent-replayed" not in retry.headers
    again = client.post(RUNS, content=body, headers={"Idempotency-Key": "whole-or-nothing",
                                                     "Content-Type": "application/json"})
    assert again.headers["idempotent-replayed"] == "true" and again.json()["id"] == retry.json()["id"]
    listed = client.get(RUNS, params={"experiment_id": experiment_id},
                        headers={"x-runledger-position": retry.headers["x-runledger-position"]}).json()["data"]
    assert [run["id"] for run in listed] == [retry.json()["id"]]


def test_half_an_ingestion_is_never_processed(server):
    client = http(server)
    run_id = client.post(RUNS, json={"experiment_id": setup(client)}).json()["id"]
    started = b'{"events": [{"type": "RunStarted", "run_id": "%s", "payload": {"worker": "w"}}]}' % run_id.encode()
    send_half_then_close(server, "/v1/ledger/events", started + b" " * 200, {})
    send_half_then_close(server, "/v1/ledger/events", started + b" " * 200, {"Idempotency-Key": "ingest"})

    queued = client.post("/v1/ledger/events", json={"events": [{"type": "RunQueued", "run_id": run_id}]})
    assert queued.status_code == 202, queued.text
    history = client.get(f"{RUNS}/{run_id}/events", params={"order": "asc"},
                         headers={"x-runledger-position": queued.headers["x-runledger-position"]})
    assert [item["type"] for item in history.json()["data"]] == ["RunCreated", "RunQueued"]
    assert "unhandled error" not in server.log_tail(400)  # a client that left is not a server error
