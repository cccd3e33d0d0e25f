"""The document-list bound, in the client's terms (issue 18, finding 8): docs/api.md says
exactly what runledger adds to each document (90 bytes, its file name as JSON, `null`
for a missing provenance), so a client knows its room. 5,000 documents filling that room
to the byte are accepted (experiment and run); one byte more is a 422 naming the
content, the room and what was added."""
from __future__ import annotations

import json

import httpx
import pytest

from services.api.app import create_app
from services.bootstrap import start_runtime
from services.keys import store_key
from services.settings import Settings

pytestmark = pytest.mark.timeout(300)
KEY = "rl_test_document_room"
LIMIT = 768 * 1024  # docs/api.md, "Document lists"
PER_DOCUMENT, NULL = 90, 4
N = 5_000


@pytest.fixture
async def api(tmp_path):
    runtime = await start_runtime(Settings(data_dir=tmp_path / "data", fold_processes=0, wait_timeout=60))
    await store_key(runtime.control, KEY, "org_a")
    app = create_app(runtime)
    try:
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api",
                                         headers={"Api-Key": KEY}, timeout=120) as client:
                yield client
    finally:
        await runtime.close()


def documented_room(n: int) -> int:
    """docs/api.md: the list holds 768 KiB as stored, less 1 (its brackets and commas), less
    what runledger adds to each document (no provenance, named `document-<i>.json`)."""
    return LIMIT - 1 - sum(PER_DOCUMENT + len(json.dumps(f"document-{i}.json")) + NULL for i in range(1, n + 1))


def documents(content: int) -> list[dict]:
    """N distinct JSON documents whose handle_inputs add up to `content` bytes as compact JSON."""
    skeleton = len('{"d":{"type":"json","data":""}}')
    each, extra = divmod(content - N * skeleton, N)
    return [{"handle_inputs": {"d": {"type": "json", "data": f"{i:05d}".ljust(each + (i < extra), ".")}}}
            for i in range(N)]


async def test_five_thousand_documents_fill_the_documented_room_to_the_byte(api):
    room = documented_room(N)
    assert room // N >= 40  # what is left for each of 5,000: the figure docs/api.md states
    defined = await api.put("/v1/workflows/wf/blocks/b", json={"type": "classifier", "config": {}})
    assert defined.status_code in (200, 201)

    over = await api.post("/v1/workflows/experiments", json={"workflow_id": "wf", "block_id": "b",
                                                             "documents": documents(room + 1)})
    assert over.status_code == 422, over.text
    detail = over.json()["detail"]
    assert detail["details"]["content_bytes"] == room + 1 and detail["details"]["room_bytes"] == room
    assert f"{room:,}" in detail["message"] and "5,000 documents" in detail["message"]

    fits = await api.post("/v1/workflows/experiments", json={"workflow_id": "wf", "block_id": "b",
                                                             "documents": documents(room)})
    assert fits.status_code in (201, 202), fits.text[:500]
    run = await api.post("/v1/workflows/experiments/runs", json={"experiment_id": fits.json()["id"]},
                         headers={"x-runledger-position": fits.headers["x-runledger-position"]})
    assert run.status_code in (201, 202), run.text[:500]
    assert run.json()["id"].startswith("run_")
