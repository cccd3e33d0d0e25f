"""A stored idempotent answer is replayed only to the key that earned it (issue 18,
finding 2): records are kept per organisation *and* key, and any other caller's request
is routed, so the route's own authorisation (role, organisation) answers it.

One admin key and one tenant key of organisation `org_a`, one tenant key of `org_b`."""
from __future__ import annotations

import httpx
import pytest

from services.api.app import create_app
from services.bootstrap import start_runtime
from services.keys import store_key
from services.settings import Settings

ADMIN, MEMBER, OTHER = "rl_test_replay_admin", "rl_test_replay_member", "rl_test_replay_other"
KEY = {"Idempotency-Key": "same-key"}


@pytest.fixture
async def api(database_url, tmp_path):
    runtime = await start_runtime(Settings(data_dir=tmp_path / "data", database_url=database_url, wait_timeout=5.0,
                                           fold_processes=0))
    await store_key(runtime.control, ADMIN, "org_a", role="admin")
    await store_key(runtime.control, MEMBER, "org_a")
    await store_key(runtime.control, OTHER, "org_b")
    app = create_app(runtime)
    try:
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
                yield client
    finally:
        await runtime.close()


def as_(key: str) -> dict:
    return {"Api-Key": key, **KEY}


async def test_an_admin_answer_is_never_replayed_to_a_tenant_key_of_its_organisation(api):
    retry = "/v1/ledger/quarantine/run_nothing/retry"
    first = await api.post(retry, headers=as_(ADMIN))
    assert first.status_code == 404 and first.json()["detail"]["code"] == "not_quarantined"

    member = await api.post(retry, headers=as_(MEMBER))
    assert member.status_code == 403 and member.json()["detail"]["code"] == "admin_required"
    assert "idempotent-replayed" not in member.headers

    stranger = await api.post(retry, headers=as_(OTHER))
    assert stranger.status_code == 403 and "idempotent-replayed" not in stranger.headers

    again = await api.post(retry, headers=as_(ADMIN))  # the key that earned it gets it back
    assert again.status_code == 404 and again.headers["idempotent-replayed"] == "true"


async def test_a_tenant_answer_is_replayed_to_its_own_key_only(api):
    block = await api.put("/v1/workflows/wf/blocks/b", json={"type": "classifier", "config": {}}, headers=as_(MEMBER))
    assert block.status_code == 201
    mine = await api.put("/v1/workflows/wf/blocks/b", json={"type": "classifier", "config": {}}, headers=as_(MEMBER))
    assert mine.headers["idempotent-replayed"] == "true" and mine.status_code == 201

    # The admin of the same organisation, and another organisation's key: each its own request.
    admin = await api.put("/v1/workflows/wf/blocks/b", json={"type": "classifier", "config": {}}, headers=as_(ADMIN))
    assert "idempotent-replayed" not in admin.headers and admin.status_code == 200  # the block exists: no change
    other = await api.put("/v1/workflows/wf/blocks/b", json={"type": "classifier", "config": {}}, headers=as_(OTHER))
    assert "idempotent-replayed" not in other.headers and other.status_code == 201  # org_b's own block
    assert other.json()["version_id"] and other.headers["x-runledger-position"] != block.headers["x-runledger-position"]
