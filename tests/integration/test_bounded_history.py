"""A request on a run's history costs its page, never the history (issue 17, docs/api.md).

Two runs share the same first 260 events; the long one goes on to 1,060. Time travel (by
position, by time, and the console's slider), a history page and a timeline page at the
same place in both read the same rows, decode the same JSON values and read the log the
same number of times: the history's length does not show in what they cost. Each is also
within its documented bound (SNAPSHOT_EVERY index rows plus a handful), and a page's
rejected events are read back from the log in one read. Counted in process
(tests/costs.py), on the embedded default and on Kafka + PostgreSQL.
"""
from __future__ import annotations

import asyncio
import contextlib
import uuid

import httpx
import pytest

from events.catalogue import DocumentPassCompleted
from projections.domain.snapshots import SNAPSHOT_EVERY
from projections.runtime.projector import Projector
from services.api.app import create_app
from services.bootstrap import start_runtime
from services.keys import store_key
from services.ledger import Ledger
from services.settings import Settings
from tests.builders import RunScript
from tests.conftest import fresh_database_url, server_backends
from tests.console_session import sign_in
from tests.costs import counting
from tests.integration.test_read_your_writes import experiment

KEY = "rl_test_bounded_history"
SHORT, LONG = 260, 1060


@pytest.fixture(params=server_backends())
async def runtime(request, tmp_path):
    settings = Settings(data_dir=tmp_path / "data", wait_timeout=5.0, fold_processes=0)
    if request.param == "kafka+postgres":
        settings = Settings(data_dir=tmp_path / "data", wait_timeout=5.0, fold_processes=0,
                            database_url=await fresh_database_url("postgres", request, tmp_path),
                            kafka_bootstrap=request.getfixturevalue("kafka_bootstrap").bootstrap,
                            topic=f"history-{uuid.uuid4().hex[:10]}")
    runtime = await start_runtime(settings, with_projector=False)  # tests run theirs (`projecting`)
    runtime.following.cancel()  # its pointer polls would be counted; these tests switch no version
    await store_key(runtime.control, KEY, "org_a")
    yield runtime
    await runtime.close()


@pytest.fixture
async def client(runtime):
    app = create_app(runtime)
    app.state.keys.ttl = 3600  # a key looked up again (2 s TTL) on a slow machine would be counted too
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://runledger", headers={"Api-Key": KEY}) as http:
        assert (await sign_in(http, KEY)).status_code == 303
        app.state.console_sessions.ttl = 3600  # likewise the console session, looked up once here:
        assert (await http.get("/console/runs")).status_code == 200
        yield http


@contextlib.asynccontextmanager
async def projecting(runtime):
    """A projector running meanwhile (a new one each time: a stopped one stays stopped)."""
    projector = Projector(runtime.log, runtime.engine)
    task = asyncio.create_task(projector.run())
    try:
        yield projector
    finally:
        projector.stop()
        await asyncio.wait_for(task, 30)


def history_of(run_id: str, events: int) -> list:
    """A run of 3 documents x 3 passes, its 9 pass facts among its first 100 events, the rest
    of its history retries (each accepted: an attempt) and, every tenth event, a stray pass
    for an unknown document (rejected)."""
    script = RunScript(run_id=run_id, docs=3, n=3, block_type="extract")
    out = [script.created(), script.queued(), script.started()]
    facts = [(doc, i) for doc in script.doc_ids for i in range(3)]
    attempt = 0
    while len(out) < events:
        if len(out) % 10 == 0:
            out.append(script.event(DocumentPassCompleted(document_id=f"doc_stray_{len(out)}", pass_index=0,
                                                          output={"total": 1})))
        elif len(out) % 10 == 5 and facts:
            doc, i = facts.pop(0)
            out.append(script.passed(doc, i, {"total": i}))
        else:
            attempt += 1
            out.append(script.failed("doc_0", 0, final=False, attempt=attempt, message=f"retry {attempt}"))
    return out


async def build(runtime, client) -> dict[str, list]:
    """Both runs projected; their positions by run, in history order."""
    runs = {"run_short": history_of("run_short", SHORT), "run_long": history_of("run_long", LONG)}
    positions = {}
    ledger = Ledger(runtime)
    await ledger.append([experiment("exp_1")])
    for run_id, events in runs.items():
        positions[run_id] = await ledger.append(events)
    async with projecting(runtime) as projector:
        for found in positions.values():
            assert await projector.wait(found[-1], 120)
    assert (await client.get("/v1/workflows/experiments/runs/run_short")).status_code == 200  # keys cached
    return positions


async def cost_of(client, path: str, **params):
    with counting() as cost:
        response = await client.get(path, params=params)
    assert response.status_code == 200, response.text[:500]
    return cost.without("console_sessions", "api_keys"), response  # the caller looked up again: not the page's


async def test_history_requests_cost_the_same_on_a_short_and_a_long_history(runtime, client):
    positions = await build(runtime, client)
    requests = {
        "as_of first event": lambda run, at: ("/v1/workflows/experiments/runs/" + run, {"as_of": at[0].token()}),
        "as_of mid-history": lambda run, at: ("/v1/workflows/experiments/runs/" + run, {"as_of": at[150].token()}),
        "slider step": lambda run, at: (f"/console/runs/{run}/as-of", {"i": "230"}),
        "history page": lambda run, at: (f"/v1/workflows/experiments/runs/{run}/events",
                                         {"order": "asc", "limit": "100", "after": str(at[120].offset)}),
        "rejected only": lambda run, at: (f"/v1/workflows/experiments/runs/{run}/events",
                                          {"order": "asc", "limit": "10", "status": "rejected"}),
        "timeline page": lambda run, at: (f"/console/runs/{run}/timeline", {"at": at[120].token()}),
    }
    costs = {}
    for name, request in requests.items():
        for run_id in ("run_short", "run_long"):
            path, params = request(run_id, positions[run_id])
            costs[(name, run_id)], _ = await cost_of(client, path, **params)
    for name in requests:
        short, long = costs[(name, "run_short")], costs[(name, "run_long")]
        assert (short.statements, short.rows, short.json_values, short.log_reads) == \
               (long.statements, long.rows, long.json_values, long.log_reads), (name, str(short), str(long), long.sql)
        assert long.rows <= SNAPSHOT_EVERY + 110 and long.statements <= 12, (name, str(long), long.sql)
        assert long.log_reads <= 1, (name, str(long))
    assert costs[("history page", "run_long")].log_reads == 1  # its rejected events: one range read


async def test_time_travel_by_time_reads_from_the_nearest_snapshot(runtime, client):
    positions = await build(runtime, client)
    found = {}
    for run_id in ("run_short", "run_long"):
        item = (await client.get(f"/v1/workflows/experiments/runs/{run_id}/events",
                                 params={"order": "asc", "limit": "1", "after": str(positions[run_id][199].offset)}))
        moment = item.json()["data"][0]["occurred_at"]
        cost, response = await cost_of(client, f"/v1/workflows/experiments/runs/{run_id}", as_of=moment)
        found[run_id] = cost, response.json()
    (short, then_short), (long, then_long) = found["run_short"], found["run_long"]
    assert then_short["as_of_event_count"] == then_long["as_of_event_count"] == 201  # the stamps only grow here
    assert (short.statements, short.rows, short.json_values) == (long.statements, long.rows, long.json_values)
    assert long.rows <= 2 * SNAPSHOT_EVERY, str(long)


async def test_the_slider_and_as_of_agree_with_the_whole_history(runtime, client):
    """Each read of the long run from a snapshot equals the answer at the same point of the
    short run (the same events), and at the end equals the run as it is now."""
    positions = await build(runtime, client)
    for i in (0, 99, 100, 101, 199, 259):
        short = (await client.get("/v1/workflows/experiments/runs/run_short",
                                  params={"as_of": positions["run_short"][i].token()})).json()
        long = (await client.get("/v1/workflows/experiments/runs/run_long",
                                 params={"as_of": positions["run_long"][i].token()})).json()
        strip = {"id", "as_of"}
        assert {k: v for k, v in short.items() if k not in strip} == {k: v for k, v in long.items() if k not in strip}
        assert long["as_of_event_count"] == i + 1
    now = (await client.get("/v1/workflows/experiments/runs/run_long")).json()
    at_end = (await client.get("/v1/workflows/experiments/runs/run_long",
                               params={"as_of": positions["run_long"][-1].token()})).json()
    assert {k: v for k, v in at_end.items() if not k.startswith("as_of")} == now
    slider = (await client.get("/console/runs/run_long/as-of", params={"i": str(LONG - 1)})).text
    assert f'data-index="{LONG - 1}"' in slider and f"Event {LONG} of {LONG}" in slider


async def test_a_history_page_fits_its_byte_budget_and_pages_on_both_ways(runtime, client):
    """Passes of ~150 KB each: a page of `limit=1000` holds only what fits in
    HISTORY_PAGE_BYTES, `after` continues from its last item, and `before` walks back."""
    from services.api.routes.runs import HISTORY_PAGE_BYTES

    script = RunScript(run_id="run_large", docs=3, n=3, block_type="extract")
    big = {"pages": ["x" * 1500] * 100}  # ~150 KB of JSON
    events = [script.created(), *[script.passed(d, i, {**big, "i": i}) for d in script.doc_ids for i in range(3)]]
    ledger = Ledger(runtime)
    positions = await ledger.append([experiment("exp_1"), *events])
    async with projecting(runtime) as projector:
        assert await projector.wait(positions[-1], 60)
    path = f"/v1/workflows/experiments/runs/{script.run_id}/events"
    pages, after = [], None
    while True:
        with counting() as cost:
            answer = await client.get(path, params={"order": "asc", "limit": "1000", **({"after": after} if after else {})})
        assert answer.status_code == 200 and len(answer.content) <= HISTORY_PAGE_BYTES
        assert cost.json_bytes <= 1.2 * HISTORY_PAGE_BYTES, str(cost)  # only what fits was decoded
        pages.append(answer.json())
        after = answer.json()["list_metadata"]["after"]
        if after is None:
            break
    assert len(pages) >= 2 and all(page["data"] for page in pages)
    walked = [item["offset"] for page in pages for item in page["data"]]
    assert walked == [p.offset for p in positions[1:]]  # every event once, in order
    back = await client.get(path, params={"order": "asc", "limit": "1000", "before": str(walked[-1])})
    assert [item["offset"] for item in back.json()["data"]] == walked[-1 - len(back.json()["data"]):-1]
    assert back.json()["list_metadata"]["before"] is not None and len(back.content) <= HISTORY_PAGE_BYTES


async def test_a_run_indexed_before_migration_0012_is_read_as_before(runtime, client):
    """Its rows have no seq or counters and it has no snapshots: time travel folds it from
    its first event (the same answers), its later events keep it untracked, and its
    timeline and history still page."""
    from sqlalchemy import delete, select, update

    from projections.store.tables import event_index, history_heads, run_snapshots

    script = RunScript(run_id="run_legacy", docs=2, n=3, block_type="extract")
    events = history_of("run_legacy", 40)
    ledger = Ledger(runtime)
    positions = await ledger.append([experiment("exp_1"), *events])
    async with projecting(runtime) as projector:
        assert await projector.wait(positions[-1], 60)
    path = f"/v1/workflows/experiments/runs/{script.run_id}"
    then = [(await client.get(path, params={"as_of": p.token()})).json() for p in positions[1:]]
    async with runtime.engine.begin() as conn:  # as migration 0012 finds it
        await conn.execute(update(event_index).where(event_index.c.aggregate_id == script.run_id).values(
            seq=None, counters=None, size=None, document_id=None, pass_fact=None))
        await conn.execute(delete(history_heads).where(history_heads.c.aggregate_id == script.run_id))
        await conn.execute(delete(run_snapshots).where(run_snapshots.c.run_id == script.run_id))
    assert [(await client.get(path, params={"as_of": p.token()})).json() for p in positions[1:]] == then

    more = await ledger.append([script.started()])
    async with projecting(runtime) as projector:
        assert await projector.wait(more[-1], 60)
    async with runtime.engine.connect() as conn:
        head = (await conn.execute(select(history_heads).where(history_heads.c.aggregate_id == script.run_id))).one()
        newest = (await conn.execute(select(event_index.c.seq).where(
            event_index.c.partition == more[-1].partition, event_index.c.offset == more[-1].offset))).scalar_one()
    assert head.next_seq is None and newest is None  # untracked until a rebuild
    timeline = await client.get(f"/console/runs/{script.run_id}/timeline")
    assert timeline.status_code == 200 and 'id="as-of"' not in timeline.text and "rebuild" in timeline.text
    history = (await client.get(f"{path}/events", params={"order": "asc", "limit": "100"})).json()["data"]
    assert len(history) == 41 and history[-1]["type"] == "RunStarted"
