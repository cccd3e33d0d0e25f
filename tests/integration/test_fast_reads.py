"""The fast path for `GET run` and `list runs` (services/api/fast_reads.py) answers what the
FastAPI routes answer, byte for byte, and leaves everything else to them: the same requests
sent to an app with and without it get the same status, body and headers."""
from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest

from services.api.app import create_app
from services.api.auth import KEY_CACHE_TTL
from services.api.fast_reads import FastReads
from services.keys import revoke_key, store_key
from tests.integration.test_read_path import project_a_run
from tests.integration.test_read_your_writes import KEY, api, projecting, runtime  # noqa: F401 (fixtures)

RUNS = "/v1/workflows/experiments/runs"
OTHER_KEY = "rl_test_fast_reads_org_b"


@contextlib.asynccontextmanager
async def client(app, key: str = KEY):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://runledger", headers={"Api-Key": key}) as c:
        yield c


def without_fast_path(runtime):
    app = create_app(runtime)
    app.user_middleware = [m for m in app.user_middleware if m.cls is not FastReads]
    return app


def fast_path_of(app) -> FastReads:
    layer = app.middleware_stack
    while not isinstance(layer, FastReads):
        layer = layer.app
    return layer


def answer(response: httpx.Response) -> tuple:
    headers = sorted((k, v) for k, v in response.headers.multi_items() if k != "x-request-id")
    return response.status_code, response.content, headers


METRICS = "/v1/workflows/experiments/metrics"

REQUESTS = [
    (f"{RUNS}/run_fast_b", {}),
    (f"{RUNS}/run_fast_b", {"x-request-id": "rid-123"}),
    (RUNS, {}),
    (RUNS, {"x-request-id": "rid-456"}),
    (f"{METRICS}?run_id=run_fast_b", {}),  # its prior run is run_fast_a
    (f"{METRICS}?run_id=run_fast_a", {}),  # the first run: no prior
    (f"{METRICS}?run_id=run_fast_b&view=summary", {}),  # another parameter: the route's
    (f"{METRICS}?run_id=run_fast_b&run_id=run_fast_a", {}),  # twice: the route's
    (f"{METRICS}?run_id=", {}),
    (f"{METRICS}?run_id=run_missing", {}),  # a 404: the route's
    (f"{METRICS}?run_id=run_fast_b", {"x-runledger-position": "0:0"}),
    (f"{RUNS}/run_missing", {}),  # a 404: the route's
    (f"{RUNS}/run_fast_b?as_of=0:0", {}),  # a query string: the route's
    (f"{RUNS}?limit=1", {}),
    (f"{RUNS}/run_fast_b", {"x-runledger-position": "0:0"}),  # a position token: the route's
    (f"{RUNS}/run_fast_b", {"api-key": "rl_unknown"}),  # a 401: the route's
    (f"{RUNS}/run_fast_b/", {}),
]


async def test_the_fast_path_answers_the_bytes_the_routes_answer(runtime):
    await project_a_run(runtime, "run_fast_a", "run_fast_b")
    fast_app = create_app(runtime)
    async with client(fast_app) as fast, client(without_fast_path(runtime)) as slow:
        for path, headers in REQUESTS:
            got, expected = await fast.get(path, headers=headers), await slow.get(path, headers=headers)
            assert answer(got) == answer(expected), (path, headers)
            if "x-request-id" in headers:
                assert got.headers["x-request-id"] == expected.headers["x-request-id"] == headers["x-request-id"]
            else:
                assert len(got.headers["x-request-id"]) == 32
        assert fast_path_of(fast_app).served == 6  # the first six; the rest fell through


async def test_telemetry_counts_fast_reads_under_their_route(runtime):
    await project_a_run(runtime, "run_fast_t")
    app = create_app(runtime)
    async with client(app) as fast:
        assert (await fast.get(f"{RUNS}/run_fast_t")).status_code == 200
        assert (await fast.get(RUNS)).status_code == 200
    assert fast_path_of(app).served == 2
    counted = app.state.telemetry.requests
    assert counted.labels("GET", RUNS + "/{run_id}", "200")._value.get() == 1
    assert counted.labels("GET", RUNS, "200")._value.get() == 1


async def test_another_organisation_sees_nothing_through_the_fast_path(runtime):
    await project_a_run(runtime, "run_fast_org")
    await store_key(runtime.control, OTHER_KEY, "org_b")
    fast_app = create_app(runtime)
    async with client(fast_app, OTHER_KEY) as fast, client(without_fast_path(runtime), OTHER_KEY) as slow:
        got = await fast.get(f"{RUNS}/run_fast_org")
        assert got.status_code == 404 and got.json()["detail"]["code"] == "run_not_found"
        assert answer(got) == answer(await slow.get(f"{RUNS}/run_fast_org"))
        listed = await fast.get(RUNS)
        assert listed.status_code == 200 and listed.json()["data"] == []
        assert answer(listed) == answer(await slow.get(RUNS))
        summary = await fast.get(f"{METRICS}?run_id=run_fast_org")
        assert summary.status_code == 404 and answer(summary) == answer(await slow.get(f"{METRICS}?run_id=run_fast_org"))
    async with client(fast_app) as own:  # the owner, through the same app, does see it
        assert (await own.get(f"{RUNS}/run_fast_org")).json()["id"] == "run_fast_org"


async def test_a_revoked_key_is_refused_within_the_key_cache_bound(runtime):
    await project_a_run(runtime, "run_fast_rev")
    secret = "rl_test_fast_reads_revoked"
    await store_key(runtime.control, secret, "org_a")
    app = create_app(runtime)
    async with client(app, secret) as fast:
        assert (await fast.get(f"{RUNS}/run_fast_rev")).status_code == 200
        assert (await fast.get(RUNS)).status_code == 200
        await revoke_key(runtime.control, secret)
        deadline = asyncio.get_running_loop().time() + KEY_CACHE_TTL + 5
        statuses = set()
        while asyncio.get_running_loop().time() < deadline:
            statuses = {(await fast.get(path)).status_code for path in (f"{RUNS}/run_fast_rev", RUNS)}
            if statuses == {401}:
                break
            await asyncio.sleep(0.05)
        assert statuses == {401}
        refused = await fast.get(f"{RUNS}/run_fast_rev")
        assert refused.json()["detail"]["message"] == "this API key has been revoked"


async def test_a_first_page_with_more_runs_than_fit_answers_the_routes_cursor(runtime):
    """More runs than a page holds: the fast path's page, and its `after` cursor (the sort
    key read straight from the driver on PostgreSQL), are the route's; the next page, asked
    with that cursor, follows on through the route."""
    await project_a_run(runtime, *(f"run_page_{i:02d}" for i in range(23)))
    fast_app = create_app(runtime)
    async with client(fast_app) as fast, client(without_fast_path(runtime)) as slow:
        got, expected = await fast.get(RUNS), await slow.get(RUNS)
        assert answer(got) == answer(expected)
        assert fast_path_of(fast_app).served == 1
        page = got.json()
        after = page["list_metadata"]["after"]
        assert len(page["data"]) == 20 and after is not None
        rest = (await fast.get(RUNS, params={"after": after})).json()["data"]
    listed = [r["id"] for r in page["data"] + rest]
    assert sorted(listed) == [f"run_page_{i:02d}" for i in range(23)] and len(set(listed)) == 23
