"""Fuzz every operation of the OpenAPI schema (schemathesis) against a live server on the
embedded default: valid and invalid requests alike, never a 5xx, and every answer's
status, content type and body as the schema documents them."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from tests.e2e.conftest import KEY, http

schemathesis = pytest.importorskip("schemathesis")
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance, response_schema_conformance, status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 25  # per operation and mode: ~20 operations x 2 modes in well under two minutes


@pytest.fixture
def seeded(server):
    """A block, an experiment and a run exist, so ids in generated paths sometimes hit."""
    with http(server) as client:
        client.put("/v1/workflows/wf/blocks/b", json={"type": "classifier", "config": {}}).raise_for_status()
        exp = client.post("/v1/workflows/experiments", json={
            "workflow_id": "wf", "block_id": "b",
            "documents": [{"handle_inputs": {"doc": {"type": "json", "data": {"text": "x"}}}}]})
        exp.raise_for_status()
        client.post("/v1/workflows/experiments/runs", json={"experiment_id": exp.json()["id"]}).raise_for_status()
    return server


def test_no_operation_answers_a_5xx_or_off_its_schema(seeded):
    schema = schemathesis.openapi.from_url(f"{seeded.url}/openapi.json")
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:
        for mode in GenerationMode:
            try:
                _fuzz(operation, mode)
            except Exception as exc:  # noqa: BLE001 - collected, reported all at once below
                failures[f"{operation.label} ({mode.value})"] = str(exc)[:1500]
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
    assert http(seeded).get("/healthz").status_code == 200


def _fuzz(operation, mode) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case):
        case.call_and_validate(headers={"Api-Key": KEY}, checks=CHECKS, timeout=30)

    check()
