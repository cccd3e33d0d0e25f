"""The read path answers what the projector stored: `GET run` and `list runs` return the
run resource rendered when the row was written (runs.resource), a row written before
that column existed still reads the same, and on PostgreSQL a read is its SELECT alone."""
from __future__ import annotations

import asyncio

import asyncpg
import orjson
import pytest
from sqlalchemy import event, select, update

from projections.store import views
from projections.store.database import make_engine, reader
from projections.store.read_columns import run_filenames, run_resource, run_summary
from projections.store.tables import runs
from services.api import metrics
from services.api.auth import KeyCache
from services.api.context import Ctx
from services.api.routes import metrics as metrics_route
from services.ledger import Ledger
from tests import metrics_oracle
from tests.builders import RunScript
from tests.integration.test_read_your_writes import KEY, api, experiment, projecting, runtime  # noqa: F401 (fixtures)

RUNS = "/v1/workflows/experiments/runs"


async def project_a_run(runtime, *run_ids: str) -> RunScript:
    """Each run: two documents, three passes each (completed, scored); the last script."""
    events = [experiment("exp_1")]
    for run_id in run_ids:
        script = RunScript(run_id=run_id, docs=2, n=3)
        events += [script.created(), script.queued()]
        events += [script.passed(f"doc_{d}", p) for d in range(2) for p in range(3)]
    positions = await Ledger(runtime).append(events)
    async with projecting(runtime):
        assert await runtime.projector.wait(positions[-1], 30)
    return script


async def stored(runtime, run_id: str):
    async with runtime.engine.connect() as conn:
        return (await conn.execute(select(runs.c.resource, runs.c.state, runs.c.spec)
                                   .where(runs.c.run_id == run_id))).one()


async def test_get_and_list_answer_the_resource_the_projector_stored(runtime, api):
    script = await project_a_run(runtime, "run_read_path")
    row = await stored(runtime, script.run_id)
    run = views.run_from_row(row)
    assert run.status == "completed"
    assert orjson.loads(row.resource) == run_resource(run)  # rendered from the state it was written with

    got = await api.get(f"{RUNS}/{script.run_id}")
    assert got.status_code == 200 and got.headers["content-type"] == "application/json"
    assert got.content == row.resource.encode()  # the stored text, as it is
    listed = await api.get(RUNS)
    assert listed.status_code == 200
    assert listed.json()["data"] == [run_resource(run)]

    async with runtime.engine.begin() as conn:  # what the store holds is what is answered
        marked = {**run_resource(run), "score": 0.123}
        await conn.execute(update(runs).where(runs.c.run_id == script.run_id).values(resource=orjson.dumps(marked)
                                                                                    .decode()))
    assert (await api.get(f"{RUNS}/{script.run_id}")).json()["score"] == 0.123
    assert (await api.get(RUNS)).json()["data"][0]["score"] == 0.123


async def test_a_row_written_before_the_resource_column_reads_the_same(runtime, api):
    script = await project_a_run(runtime, "run_legacy_row")
    before = (await api.get(f"{RUNS}/{script.run_id}")).json()
    listed_before = (await api.get(RUNS)).json()
    async with runtime.engine.begin() as conn:  # as migration 0007 leaves an older row
        await conn.execute(update(runs).where(runs.c.run_id == script.run_id).values(resource=None))

    assert (await api.get(f"{RUNS}/{script.run_id}")).json() == before
    assert (await api.get(RUNS)).json() == listed_before
    assert (await api.get(f"{RUNS}/run_missing")).status_code == 404


class CountingConnection(asyncpg.Connection):
    """asyncpg's connection, noting every statement SQLAlchemy sends through it (pings,
    BEGIN and ROLLBACK included)."""

    sent: list[str] = []

    async def execute(self, query, *args, **kwargs):
        CountingConnection.sent.append(query)
        return await super().execute(query, *args, **kwargs)

    async def prepare(self, query, *args, **kwargs):
        CountingConnection.sent.append(query)
        return await super().prepare(query, *args, **kwargs)

    async def fetchrow(self, query, *args, **kwargs):
        CountingConnection.sent.append(query)
        return await super().fetchrow(query, *args, **kwargs)


async def test_a_postgresql_read_is_its_select_alone(database_url, runtime, api):
    """No pre-ping, no BEGIN/ROLLBACK around a read: a run read sends the server its
    SELECT and nothing else."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: SQLite's driver opens no transaction for a SELECT, and has no pre-ping")
    script = await project_a_run(runtime, "run_round_trips")
    uncached = "&" if "?" in database_url else "?"  # every SELECT prepared afresh, so it is seen
    engine = make_engine(f"{database_url}{uncached}prepared_statement_cache_size=0")

    def counting(_dialect, _record, _args, params) -> None:
        params["connection_class"] = CountingConnection

    event.listen(engine.sync_engine, "do_connect", counting)
    sent = CountingConnection.sent
    try:
        async with reader(engine).connect() as conn:  # the pool's first connection (set-up queries)
            assert await views.get_run_resource(conn, "org_a", script.run_id) is not None
        assert sent, "the counting connection is in use"
        sent.clear()
        async with reader(engine).connect() as conn:
            assert await views.get_run_resource(conn, "org_a", script.run_id) is not None
    finally:
        await engine.dispose()
    assert len(sent) == 1 and sent[0].lstrip().upper().startswith("SELECT"), sent


async def test_the_metrics_summary_from_row_scores_equals_the_one_from_whole_states(runtime, api):
    """The summary reads the run's summary column and each document's status and score
    columns, not their states: the same inputs as from the decoded states, prior run included
    (tests/integration/test_metrics_summary.py compares the answers byte for byte)."""
    script = await project_a_run(runtime, "run_summary_prior", "run_summary")
    ctx = Ctx("org_a", runtime, Ledger(runtime))
    light = await metrics_route.summary_input(ctx, script.run_id, True, None)
    async with runtime.engine.connect() as conn:  # as the views read it before issue 17: whole states
        whole = await metrics_oracle.load(conn, "org_a", script.run_id, True, None)
    assert light.prior is not None and light.prior.run_id == whole.prior.run_id == "run_summary_prior"
    assert [d.score for d in light.documents] == [d.score for d in whole.documents] != [None, None]
    summary = {**run_summary(whole.run), "filenames": run_filenames(whole.run)}  # the second from its own column
    assert light.run == orjson.loads(orjson.dumps(summary)) and light.current == whole.current
    answered = await api.get("/v1/workflows/experiments/metrics", params={"run_id": script.run_id,
                                                                          "allow_stale": "true"})
    assert answered.status_code == 200 and answered.json() == orjson.loads(orjson.dumps(metrics.summary(light)))


async def test_a_burst_of_requests_with_one_key_asks_the_store_once(runtime):
    """When the cached key expires under load, the requests in flight share one lookup
    instead of each opening a connection for its own."""
    cache = KeyCache(runtime.control, ttl=0)  # every request finds the entry expired
    selects: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "api_keys" in statement:
            selects.append(statement)

    event.listen(runtime.control.sync_engine, "before_cursor_execute", count)
    try:
        found = await asyncio.gather(*(cache.get(KEY) for _ in range(12)))
    finally:
        event.remove(runtime.control.sync_engine, "before_cursor_execute", count)
    assert {record.org_id for record in found} == {"org_a"}
    assert len(selects) == 1
    assert (await cache.get("rl_not_a_key")) is None
