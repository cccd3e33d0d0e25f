"""RUNLEDGER_LOG_FORMAT=json: one JSON object per log line, each request's line carrying
its request id, organisation, run id and W3C trace id, so a request can be followed by x-request-id."""
from __future__ import annotations

import json

from tests.e2e.conftest import KEY, http
from tests.server import ServerProcess
from tests.waiting import wait_for

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_request_lines_carry_request_org_and_run(tmp_path):
    env = {"RUNLEDGER_BOOTSTRAP_KEY": KEY, "RUNLEDGER_LOG_FORMAT": "json"}
    with ServerProcess(tmp_path / "server", env) as server:
        with http(server) as client:
            answer = client.get("/v1/workflows/experiments/runs/run_nope", headers={
                "x-request-id": "req-42", "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"})
        assert answer.status_code == 404

        def request_lines():
            lines = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]
            return [line for line in lines if line.get("request_id") == "req-42"]

        lines = wait_for(request_lines, lambda found: any(line["logger"] == "runledger.access" for line in found))
    access = next(line for line in lines if line["logger"] == "runledger.access")
    assert access["org_id"] == "default" and access["run_id"] == "run_nope"
    assert (access["status"], access["route"]) == (404, "/v1/workflows/experiments/runs/{run_id}")
    assert access["level"] == "info" and access["duration_ms"] >= 0
    assert access["trace_id"] == TRACE
