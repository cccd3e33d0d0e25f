"""Bad input gets a clear error and loses nothing; no body, however malformed, is a 500."""
from __future__ import annotations

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.conftest import KEY, http
from tests.server import create_key
from tests.e2e.test_sdk_scenario import DOCS, setup_experiment

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from(["workflow_id", "block_id", "documents", "n_consensus", "name", "events", "type",
                               "config", "experiment_id", "run_id", "payload", "handle_inputs", "source_experiment_id"])
bodies = json_values | st.dictionaries(field_names, json_values, max_size=5)
WRITES = [
    ("POST", "/v1/workflows/experiments"),
    ("POST", "/v1/workflows/experiments/runs"),
    ("POST", "/v1/ledger/events"),
    ("PUT", "/v1/workflows/wf_fuzz/blocks/b"),
]


def assert_clear_error(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:  # FastAPI's own 422 too: the envelope, its error list in details
        detail = response.json()["detail"]
        assert {"code", "message", "details"} <= set(detail)
        if response.status_code == 422 and detail["code"] == "invalid_request" and "errors" in detail["details"]:
            assert all({"loc", "msg"} <= set(item) for item in detail["details"]["errors"])
    assert response.headers["x-request-id"]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method_path=st.sampled_from(WRITES), body=bodies)
def test_no_malformed_body_is_a_server_error(server, method_path, body):
    method, path = method_path
    with http(server) as client:
        assert_clear_error(client.request(method, path, json=body))


def test_bytes_that_are_not_json_are_refused_clearly(server):
    with http(server) as client:
        for method, path in WRITES:
            for raw in (b"\xff{not json", b"{not json"):
                response = client.request(method, path, content=raw, headers={"content-type": "application/json"})
                assert response.status_code in (400, 422)
                assert_clear_error(response)


def test_one_invalid_event_means_none_is_appended(server):
    from retab import Retab

    sdk = Retab(api_key=KEY, base_url=server.url, max_retries=0)
    run = sdk.workflows.experiments.runs.create(experiment_id=setup_experiment(server, sdk, DOCS[:1]).id)
    doc = sdk.workflows.experiments.results.list(run_id=run.id).data[0].document_id
    good = {"type": "DocumentPassCompleted", "run_id": run.id,
            "payload": {"document_id": doc, "pass_index": 0, "output": {"category": "invoice"}}}
    bad = {"type": "DocumentPassCompleted", "run_id": run.id, "payload": {"document_id": doc, "pass_index": "x"}}

    admin = create_key(server, "ops", admin=True)

    def log_end() -> int:
        status = http(server, admin).get("/v1/ledger/projections").json()
        return sum(p["end_offset"] for p in status["projections"][0]["partitions"])

    before = log_end()
    response = http(server).post("/v1/ledger/events", json={"events": [good, bad]})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail["code"] == "invalid_request" and detail["message"].startswith("events[1]:")
    assert "pass_index" in detail["message"] and detail["details"]["index"] == 1
    assert log_end() == before
    unknown = http(server).post("/v1/ledger/events", json={"events": [{**good, "type": "RunCreated"}]})
    assert unknown.status_code == 422


def test_request_ids_are_echoed(server):
    response = http(server).get("/healthz", headers={"x-request-id": "trace-123"})
    assert response.headers["x-request-id"] == "trace-123"
    assert http(server).get("/healthz").headers["x-request-id"]
