"""Read-your-writes: a read that carries a write's position token waits for the projection."""
from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest

from events.catalogue import ExperimentCreated
from events.envelope import new_event
from services.api.app import create_app
from services.keys import store_key
from services.bootstrap import start_runtime
from services.ledger import Ledger
from services.settings import Settings

KEY = "rl_test_read_your_writes"


@pytest.fixture
async def runtime(database_url, tmp_path):
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, wait_timeout=1.0)
    runtime = await start_runtime(settings)
    await store_key(runtime.control, KEY, "org_a")
    yield runtime
    await runtime.close()


@pytest.fixture
async def api(runtime):
    transport = httpx.ASGITransport(app=create_app(runtime))  # no lifespan: the test runs the projector
    async with httpx.AsyncClient(transport=transport, base_url="http://runledger", headers={"Api-Key": KEY}) as client:
        yield client


@contextlib.asynccontextmanager
async def projecting(runtime):
    task = asyncio.create_task(runtime.projector.run())
    try:
        yield
    finally:
        runtime.projector.stop()
        await asyncio.wait_for(task, 15)


def experiment(experiment_id: str):
    payload = ExperimentCreated(workflow_id="wf_1", block_id="b1", name="Written directly", n_consensus=3,
                                documents=())
    return new_event(payload, aggregate_id=experiment_id, org_id="org_a", producer="test")


async def test_a_read_with_the_token_waits_until_the_projection_has_the_write(runtime, api):
    # A producer appends straight to the log: nothing waits for the projection.
    [position] = await Ledger(runtime).append([experiment("exp_direct")])
    assert (await api.get("/v1/workflows/experiments/exp_direct")).status_code == 404  # not projected yet

    read = asyncio.create_task(api.get("/v1/workflows/experiments/exp_direct",
                                       headers={"x-runledger-position": position.token()}))
    async with projecting(runtime):  # the read can only be answered 200 once this has projected
        response = await read
        by_query = await api.get("/v1/workflows/experiments/exp_direct", params={"position": position.token()})
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Written directly"
    assert by_query.status_code == 200


async def test_a_write_token_can_be_sent_back_as_it_came(runtime, api):
    positions = await Ledger(runtime).append([experiment("exp_a"), experiment("exp_b")])
    token = ",".join(p.token() for p in positions)  # the x-runledger-position form of a write response
    async with projecting(runtime):
        listed = await api.get("/v1/workflows/experiments", params={"workflow_id": "wf_1", "position": token})
    assert {e["id"] for e in listed.json()["data"]} == {"exp_a", "exp_b"}


@pytest.mark.parametrize("token, complaint", [
    ("abc", "expected '<partition>:<offset>"),
    ("0:1,x:2", "expected '<partition>:<offset>"),
    ("99:0", "the log has partitions 0..5"),
    ("0:-1", "offsets start at 0"),
])
async def test_an_invalid_token_is_a_422_that_says_what_is_wrong(api, token, complaint):
    for request in ({"headers": {"x-runledger-position": token}}, {"params": {"position": token}}):
        response = await api.get("/v1/workflows/experiments/exp_x", **request)
        assert response.status_code == 422
        detail = response.json()["detail"]
        assert detail["code"] == "invalid_request" and complaint in detail["message"]
        [error] = detail["details"]["errors"]
        assert complaint in error["msg"]
        assert error["loc"] in (["header", "x-runledger-position"], ["query", "position"])


async def test_a_token_beyond_the_end_of_the_log_times_out_with_503(runtime, api):
    async with projecting(runtime):
        response = await api.get("/v1/workflows/experiments/exp_x", headers={"x-runledger-position": "0:1000"})
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert detail["code"] == "projection_lag" and detail["details"] == {"position": "0:1000"}
    assert "within 1s" in detail["message"]


async def test_nobody_waits_without_a_valid_key(runtime, api):
    async with projecting(runtime):
        response = await api.get("/v1/workflows/experiments/exp_x",
                                 headers={"x-runledger-position": "0:1000", "Api-Key": "wrong"})
    assert response.status_code == 401  # answered at once, not after the wait timeout
