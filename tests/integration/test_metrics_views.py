"""`by_document`, `by_target` and `votes` read the rows of the documents and targets they
answer for (projections/store/metric_rows.py), and answer byte for byte what the views
computed from whole states answered (tests/metrics_oracle.py): every block type, every
document, path and label, with and without a prior run, stale and not, and every 404 and
422 in the same order."""
from __future__ import annotations

import pytest
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy import update

from projections.store import metric_rows
from projections.store.tables import document_targets, event_index
from services.api.errors import ApiError
from tests import metrics_oracle
from tests.integration.test_metrics_summary import settled
from tests.integration.test_read_your_writes import api, projecting, runtime  # noqa: F401 (fixtures)

METRICS = "/v1/workflows/experiments/metrics"
ITEMS = [{"sku": "A", "qty": 1, "price": 2.5}, {"sku": "B", "qty": 3, "price": 10}]
PASSES = {  # per block type, per document, the passes of each run (3 documents, n_consensus 3)
    "extract": [
        [{"total": 100, "vendor": "ACME", "lines": [{"p": 1}, {"p": 2}]}] * 2
        + [{"total": 100, "vendor": "Globex", "lines": [{"p": 1}]}],
        [{"total": 7.5, "vendor": "Initech", "note": "long text " * 12}] * 3,
        None,  # every pass fails: no consensus, no targets
    ],
    "classifier": [[{"category": "invoice"}] * 2 + [{"category": "receipt"}],
                   [{"category": "receipt"}] * 3, [{"category": "Invoice"}, {"category": "memo"},
                                                   {"category": "invoice"}]],
    "split": [
        [{"splits": [{"name": "cover", "pages": [1]}, {"name": "body", "pages": [2, 3] if i else [2]}]}
         for i in range(3)],
        [{"splits": [{"name": "cover", "pages": [1, 2]}]}] * 3,
        [{"splits": [{"name": "body", "pages": [1]}, {"name": "body", "pages": [2]}]}] * 2
        + [{"splits": [{"name": "cover", "pages": [1]}]}],
    ],
    "for_each": [[{"items": ITEMS}] * 2 + [{"items": ITEMS[:1]}], [{"items": ITEMS[1:]}] * 3,
                 [{"items": []}, {"items": ITEMS}, {"items": ITEMS}]],
}
CONFIG = {"for_each": {"key_field": "sku"}}
DOCUMENTS = [{"handle_inputs": {"doc": {"type": "json", "data": {"n": i}}}} for i in range(3)]


async def scored_run(runtime, api, experiment_id: str, block_type: str, shift: int) -> tuple[str, list[str]]:
    """A run whose documents get their passes (rotated by `shift`, so runs differ)."""
    run = await settled(runtime, await api.post("/v1/workflows/experiments/runs", json={"experiment_id": experiment_id}))
    results = (await api.get("/v1/workflows/experiments/results", params={"run_id": run["id"], "order": "asc"})).json()
    docs = [r["document_id"] for r in results["data"]]
    passes = PASSES[block_type][shift:] + PASSES[block_type][:shift]
    events = []
    for doc, outputs in zip(docs, passes):
        for i in range(3):
            if outputs is None:
                events.append({"type": "DocumentPassFailed", "run_id": run["id"], "payload": {
                    "document_id": doc, "pass_index": i, "final": True, "error": {"message": "no"}}})
            else:
                events.append({"type": "DocumentPassCompleted", "run_id": run["id"],
                               "payload": {"document_id": doc, "pass_index": i, "output": outputs[i]}})
    await settled(runtime, await api.post("/v1/ledger/events", json={"events": events}))
    return run["id"], docs


async def experiment_with_runs(runtime, api, block_type: str) -> tuple[str, list[str], list[str]]:
    await settled(runtime, await api.put(f"/v1/workflows/wf_v/blocks/b_{block_type}",
                                         json={"type": block_type, "config": CONFIG.get(block_type, {})}))
    exp = await settled(runtime, await api.post("/v1/workflows/experiments", json={
        "workflow_id": "wf_v", "block_id": f"b_{block_type}", "documents": DOCUMENTS, "n_consensus": 3,
        "name": block_type}))
    first, docs = await scored_run(runtime, api, exp["id"], block_type, 0)
    second, _ = await scored_run(runtime, api, exp["id"], block_type, 1)
    third = await settled(runtime, await api.post("/v1/workflows/experiments/runs", json={"experiment_id": exp["id"]}))
    return exp["id"], [first, second, third["id"]], docs


async def paths_and_labels(runtime, run_ids: list[str]) -> tuple[list[str], list[str]]:
    async with runtime.engine.connect() as conn:
        paths, labels = set(), set()
        for run_id in run_ids:
            data = await metrics_oracle.load(conn, "org_a", run_id, False, None)
            for doc in data.documents:
                for target in (doc.consensus or {}).get("targets", ()):
                    paths.add(target["path"])
            labels |= set(metrics_oracle.aggregate.confusion(data.run.metrics)["diag"])
    return sorted(paths), sorted(labels)


def questions(run_ids: list[str], docs: list[str], paths: list[str], labels: list[str]) -> list[dict]:
    first, second, third = run_ids
    asked = []
    for run_id, extra in [(second, {}), (first, {}), (second, {"include_prior": "false"}),
                          (first, {"prior_run_id": second}), (third, {}), (second, {"prior_run_id": "run_missing"})]:
        base = {"run_id": run_id, **extra}
        for doc in [*docs, "doc_missing", None]:
            asked.append({**base, "view": "by_document", "document_id": doc})
            for path in [*paths, "no.such.path", None]:
                asked.append({**base, "view": "votes", "document_id": doc, "target_path": path})
        for target in [*paths, *labels, "no.such.path", None]:
            asked.append({**base, "view": "by_target", "target_path": target})
    return [{k: v for k, v in q.items() if v is not None} for q in asked]


async def expected(runtime, params: dict) -> tuple[int, bytes | dict]:
    """What the views computed from whole states answered."""
    async with runtime.engine.connect() as conn:
        try:
            found = await metrics_oracle.answer(
                conn, "org_a", params["run_id"], params["view"], params.get("document_id"), params.get("target_path"),
                params.get("include_prior") != "false", params.get("prior_run_id"), params.get("allow_stale") == "true")
        except ApiError as exc:
            return exc.status, {"code": exc.code, "message": exc.message, "details": exc.details}
    return 200, JSONResponse(jsonable_encoder(found)).body


async def compare(runtime, api, asked: list[dict]) -> int:
    answered = 0
    for params in asked:
        response = await api.get(METRICS, params=params)
        status, body = await expected(runtime, params)
        assert response.status_code == status, (params, response.text)
        if status == 200:
            assert response.content == body, params
            answered += response.json().get("kind") in ("by_document", "by_target", "votes")
        else:
            assert response.json()["detail"] == body, params
    return answered


@pytest.mark.parametrize("block_type", sorted(PASSES))
async def test_every_view_answers_what_the_whole_states_answered(runtime, api, block_type):
    async with projecting(runtime):
        experiment_id, run_ids, docs = await experiment_with_runs(runtime, api, block_type)
        paths, labels = await paths_and_labels(runtime, run_ids)
        assert paths and (labels or block_type not in ("classifier", "split"))
        asked = questions(run_ids, docs, paths, labels)
        answered = await compare(runtime, api, asked)
        assert answered >= 40  # real answers, beside the 404s and 422s

        await settled(runtime, await api.patch(f"/v1/workflows/experiments/{experiment_id}", json={"n_consensus": 5}))
        stale = [q for q in asked if q["run_id"] == run_ids[1] and "prior_run_id" not in q][:40]
        assert await compare(runtime, api, stale) == 0  # stale_metrics, in the same order as before
        assert await compare(runtime, api, [{**q, "allow_stale": "true"} for q in stale]) > 0


async def test_rows_indexed_before_the_label_and_document_columns_are_filled_by_the_backfill(runtime, api):
    """A read model from before migration 0011 holds NULL in both index columns: the
    backfill (run by the migration, or when SQLite gains the columns) fills them so that
    label targets and a document's pass events are found."""
    from projections.store import backfill

    async with projecting(runtime):
        _, run_ids, docs = await experiment_with_runs(runtime, api, "split")
        params = {"run_id": run_ids[1], "view": "by_target", "target_path": "body"}
        before = (await api.get(METRICS, params=params)).content
        async with runtime.engine.connect() as conn:
            events_before = await metric_rows.pass_events(conn, run_ids[0], docs[0])
        async with runtime.engine.begin() as conn:
            await conn.execute(update(document_targets).values(label_hash=None))
            await conn.execute(update(event_index).values(document_id=None))
        assert (await api.get(METRICS, params=params)).json()["documents"] == []  # no row has the label
        async with runtime.engine.begin() as conn:
            await conn.run_sync(backfill.event_documents)
            await conn.run_sync(backfill.target_labels)
            assert await metric_rows.pass_events(conn, run_ids[0], docs[0]) == events_before
        assert (await api.get(METRICS, params=params)).content == before
    assert sorted(events_before) == [0, 1, 2]


async def test_an_embedded_read_model_from_before_0011_gains_the_columns_indexes_and_their_values(runtime, api):
    """SQLite: `create_schema` at start adds the nullable columns and the indexes an older
    file lacks, and fills the index columns (projections/store/backfill.py)."""
    from sqlalchemy import inspect, text

    from projections.store.database import create_schema

    if runtime.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's read model comes from migrations (test_migrations.py)")
    async with projecting(runtime):
        _, run_ids, docs = await experiment_with_runs(runtime, api, "classifier")
        params = {"run_id": run_ids[1], "view": "by_target", "target_path": "receipt"}
        before = (await api.get(METRICS, params=params)).content
    async with runtime.engine.begin() as conn:  # as a file written before migration 0011
        for index in ("ix_document_targets_path", "ix_document_targets_label", "ix_event_index_document"):
            await conn.execute(text(f"DROP INDEX {index}"))
        await conn.execute(text("ALTER TABLE document_targets DROP COLUMN label_hash"))
        for index in ("ix_event_index_facts", "ix_event_index_document"):  # the indexes on it first
            await conn.execute(text(f"DROP INDEX IF EXISTS {index}"))
        await conn.execute(text("ALTER TABLE event_index DROP COLUMN document_id"))
    await create_schema(runtime.engine)
    async with runtime.engine.connect() as conn:
        indexes = await conn.run_sync(lambda c: {i["name"] for t in ("document_targets", "event_index")
                                                 for i in inspect(c).get_indexes(t)})
        assert {"ix_document_targets_path", "ix_document_targets_label", "ix_event_index_document"} <= indexes
        assert sorted(await metric_rows.pass_events(conn, run_ids[0], docs[0])) == [0, 1, 2]
    assert (await api.get(METRICS, params=params)).content == before
    assert b'"documents":[{' in before
