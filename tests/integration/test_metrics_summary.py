"""The metrics summary reads the columns the projector wrote beside the states
(runs.summary, experiments.freshness, blocks.execution; projections/store/read_columns.py) and
decodes no state. Its answers are the ones read from the states, byte for byte; a row
written before those columns (migration 0008) reads the same; a replay writes the same text."""
from __future__ import annotations

import orjson
import pytest
from sqlalchemy import select, update

from events.log import Position
from projections.store import read_columns, serialize as ser, views
from projections.store.database import make_engine, prepare_schema
from projections.store.tables import blocks, experiments, runs
from services.keys import store_key
from tests.conftest import fresh_database_url
from tests.fixtures.recorded_log.replay import embedded_log, project_all, read_records
from tests.integration.test_read_your_writes import api, projecting, runtime  # noqa: F401 (fixtures)

METRICS = "/v1/workflows/experiments/metrics"
OTHER_KEY = "rl_test_metrics_summary_org_b"
PASSES = {  # per block type: the three passes of each of two documents
    "extract": [[{"total": 100, "vendor": "ACME"}] * 2 + [{"total": 100, "vendor": "Globex"}],
                [{"total": 7.5, "vendor": "Initech"}] * 3],
    "classifier": [[{"category": "invoice"}] * 2 + [{"category": "receipt"}], [{"category": "receipt"}] * 3],
    "split": [[{"splits": [{"name": "cover", "pages": [1]}, {"name": "body", "pages": [2, 3] if i else [2]}]}
               for i in range(3)], [{"splits": [{"name": "cover", "pages": [1, 2]}]}] * 3],
}
DOCUMENTS = [{"handle_inputs": {"doc": {"type": "json", "data": {"n": i}}}} for i in range(2)]


async def settled(runtime, response):
    assert response.status_code in (200, 201, 202), response.text
    for token in response.headers["x-runledger-position"].split(","):
        assert await runtime.projector.wait(Position.parse(token), 30)
    return response.json()


async def scored_run(runtime, api, experiment_id: str, block_type: str) -> str:
    run = await settled(runtime, await api.post("/v1/workflows/experiments/runs", json={"experiment_id": experiment_id}))
    results = (await api.get("/v1/workflows/experiments/results", params={"run_id": run["id"], "order": "asc"})).json()
    docs = [r["document_id"] for r in results["data"]]
    events = [{"type": "DocumentPassCompleted", "run_id": run["id"],
               "payload": {"document_id": doc, "pass_index": i, "output": output}}
              for doc, outputs in zip(docs, PASSES[block_type]) for i, output in enumerate(outputs)]
    await settled(runtime, await api.post("/v1/ledger/events", json={"events": events}))
    return run["id"]


async def experiment_with_runs(runtime, api, block_type: str) -> tuple[str, list[str]]:
    """A block, an experiment, two scored runs and a third not yet scored."""
    await settled(runtime, await api.put(f"/v1/workflows/wf_s/blocks/b_{block_type}",
                                         json={"type": block_type, "config": {}}))
    exp = await settled(runtime, await api.post("/v1/workflows/experiments", json={
        "workflow_id": "wf_s", "block_id": f"b_{block_type}", "documents": DOCUMENTS, "n_consensus": 3,
        "name": block_type}))
    first = await scored_run(runtime, api, exp["id"], block_type)
    second = await scored_run(runtime, api, exp["id"], block_type)
    third = await settled(runtime, await api.post("/v1/workflows/experiments/runs", json={"experiment_id": exp["id"]}))
    return exp["id"], [first, second, third["id"]]


def questions(experiment_id: str, run_ids: list[str]) -> list[dict]:
    first, second, third = run_ids
    return [{"run_id": second}, {"run_id": first}, {"run_id": second, "include_prior": "false"},
            {"run_id": third, "prior_run_id": first}, {"run_id": second, "prior_run_id": "run_missing"},
            {"run_id": third}, {"experiment_id": experiment_id}, {"run_id": "run_missing"}]


async def answers(api, asked: list[dict], **headers) -> list[tuple[int, bytes]]:
    found = []
    for params in asked:
        response = await api.get(METRICS, params=params, headers=headers)
        found.append((response.status_code, response.content))
    return found


async def from_states(runtime, run_id: str, prior_id: str | None) -> dict:
    """The summary as it was computed from the decoded states before migration 0008."""
    async with runtime.engine.connect() as conn:
        run = await views.get_run(conn, "org_a", run_id)
        docs = await views.run_documents_of(conn, run_id)
        prior = await views.get_run(conn, "org_a", prior_id) if prior_id else None
        prior_docs = {d.document_id: d for d in await views.run_documents_of(conn, prior_id)} if prior else {}
    filenames = {d["document_id"]: d["filename"] for d in run.spec["documents"]}
    labels = run.spec["block_type"] in ("classifier", "split")
    agg = read_columns.aggregate.confusion(run.metrics) if labels else {
        "likelihoods": read_columns.aggregate.likelihoods(run.metrics)}
    return {
        "experiment_id": run.spec["experiment_id"], "run_id": run.run_id, "kind": "summary", "view": "summary",
        "block_execution_fingerprint": run.spec["block_execution_fingerprint"], "block_type": run.spec["block_type"],
        "score": run.score, "prior_score": prior.score if prior else None, "prior_run_id": prior_id,
        "documents": [{"id": d.document_id, "filename": filenames[d.document_id], "score": d.score,
                       "prior_score": prior_docs[d.document_id].score if d.document_id in prior_docs else None}
                      for d in docs if d.status == "completed"],
        "scored_document_count": run.completed_document_count, "total_document_count": run.total_document_count,
        "aggregate": agg,
    }


async def forget_summary_columns(runtime) -> None:
    """As migration 0008 leaves the rows written before it."""
    async with runtime.engine.begin() as conn:
        await conn.execute(update(runs).values(summary=None))
        await conn.execute(update(experiments).values(freshness=None))
        await conn.execute(update(blocks).values(execution=None))


@pytest.mark.parametrize("block_type", sorted(PASSES))
async def test_the_summary_from_stored_columns_is_the_one_from_the_states(runtime, api, block_type):
    await store_key(runtime.control, OTHER_KEY, "org_b")
    async with projecting(runtime):
        experiment_id, run_ids = await experiment_with_runs(runtime, api, block_type)
        first, second, third = run_ids
        asked = questions(experiment_id, run_ids)
        fast = await answers(api, asked)
        assert [status for status, _ in fast] == [200, 200, 200, 200, 404, 200, 200, 404]
        assert orjson.loads(fast[0][1]) == await from_states(runtime, second, first)
        assert orjson.loads(fast[1][1]) == await from_states(runtime, first, None)
        assert orjson.loads(fast[2][1]) == await from_states(runtime, second, None)
        assert orjson.loads(fast[3][1])["kind"] == orjson.loads(fast[5][1])["kind"] == "no_metrics"
        assert third in orjson.loads(fast[6][1])["message"]  # its latest run, not scored yet
        theirs = await api.get(METRICS, params={"run_id": second}, headers={"Api-Key": OTHER_KEY})
        assert theirs.status_code == 404 and theirs.json()["detail"]["code"] == "run_not_found"

        await forget_summary_columns(runtime)
        assert await answers(api, asked) == fast  # read from the states

        await settled(runtime, await api.patch(f"/v1/workflows/experiments/{experiment_id}", json={"n_consensus": 5}))
        stale_asked = asked[:3] + [{"run_id": second, "allow_stale": "true"}]
        stale = await answers(api, stale_asked)
        assert [orjson.loads(body)["kind"] for _, body in stale] == ["stale_metrics"] * 3 + ["summary"]
        assert stale[3] == fast[0]
        await forget_summary_columns(runtime)
        assert await answers(api, stale_asked) == stale


async def test_rows_without_the_summary_columns_read_as_before(runtime, api):
    """A read model migrated to 0008 holds NULL in every older row: each of the three
    columns is read from its row's state, and the answers do not change."""
    async with projecting(runtime):
        experiment_id, run_ids = await experiment_with_runs(runtime, api, "classifier")
        asked = questions(experiment_id, run_ids)
        stored = await answers(api, asked)
        await forget_summary_columns(runtime)
        assert await answers(api, asked) == stored
        async with runtime.engine.connect() as conn:
            assert (await conn.execute(select(runs.c.summary).where(runs.c.summary.is_not(None)))).first() is None
        await settled(runtime, await api.patch(f"/v1/workflows/experiments/{experiment_id}", json={"name": "renamed"}))
        assert await answers(api, asked) == stored  # the experiment's row rewritten with its column, the rest NULL


async def derived_columns(engine) -> dict[str, dict[str, tuple[str, str]]]:
    """Per column, per row: the stored derived column text and the text rendered from the row's state."""
    render = read_columns.render
    renderers = {
        "runs.summary": (runs, runs.c.run_id, "summary",
                         lambda row: render(read_columns.run_summary(views.run_from_row(row)))),
        "runs.filenames": (runs, runs.c.run_id, "filenames",
                           lambda row: render(read_columns.run_filenames(views.run_from_row(row)))),
        "experiments": (experiments, experiments.c.experiment_id, "freshness",
                        lambda row: render(read_columns.experiment_freshness(ser.experiment_from_json(row.state)))),
        "blocks": (blocks, blocks.c.block_key, "execution",
                   lambda row: render(read_columns.block_execution(ser.block_from_json(row.state)))),
    }
    found = {}
    async with engine.connect() as conn:
        for name, (table, key, column, rendered) in renderers.items():
            spec = [table.c.spec] if table is runs else []  # a run's spec is kept apart from its state (0015)
            rows = (await conn.execute(select(key, table.c[column], table.c.state, *spec))).all()
            found[name] = {row[0]: (row[1], rendered(row)) for row in rows}
    return found


async def test_a_replay_writes_the_same_summary_columns(database_url, engine, request, tmp_path):
    """The recorded log (every block type, a block redefined) projected into two fresh read
    models: the same column text row by row, each the rendering of the row's own state."""
    records = read_records()
    log = await embedded_log(tmp_path / "recorded.db", records)
    (tmp_path / "replay").mkdir()
    kind = "sqlite" if database_url.startswith("sqlite") else "postgres"
    replay_url = await fresh_database_url(kind, request, tmp_path / "replay")
    replay = make_engine(replay_url)
    try:
        await prepare_schema(replay_url, replay)
        await project_all(log, engine)
        await project_all(log, replay)
        live, replayed = await derived_columns(engine), await derived_columns(replay)
    finally:
        await log.close()
        await replay.dispose()
    assert live == replayed
    assert all(len(rows) > 0 for rows in live.values()), {name: len(rows) for name, rows in live.items()}
    for name, rows in live.items():
        for key, (stored, rendered) in rows.items():
            assert stored == rendered, (name, key)
