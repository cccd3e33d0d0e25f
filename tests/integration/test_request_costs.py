"""What a request costs, counted (tests/costs.py) without timing anything: the bounds of
docs/api.md, "What a request costs", for the metrics views, the experiments and results
pages, a verification's start and the console's metrics and experiments pages.

Two experiments alike but for their size: one run of 10 documents, one of 50 documents
with a long history (every pass reported again, twice: duplicates, rejected). A request
about one document or one target costs the same on both; a page costs its page."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.console_session import sign_in
from tests.costs import Cost, counting
from tests.integration.test_metrics_summary import settled
from tests.integration.test_read_your_writes import KEY, api, projecting, runtime  # noqa: F401 (fixtures)

METRICS = "/v1/workflows/experiments/metrics"
BACKGROUND = ("api_keys", "read_model_versions")


@dataclass
class Scene:
    run_id: str
    prior_id: str
    experiment_id: str
    docs: list[str]


async def scored_run(runtime, api, experiment_id: str, duplicates: int) -> tuple[str, list[str]]:
    run = await settled(runtime, await api.post("/v1/workflows/experiments/runs", json={"experiment_id": experiment_id}))
    results = (await api.get("/v1/workflows/experiments/results",
                             params={"run_id": run["id"], "order": "asc", "limit": 1000})).json()
    docs = [r["document_id"] for r in results["data"]]
    events = [{"type": "DocumentPassCompleted", "run_id": run["id"], "payload": {
        "document_id": doc, "pass_index": i, "output": {"total": i % 2, "vendor": "ACME", "n": n}}}
        for n, doc in enumerate(docs) for i in range(3)]
    for start in range(0, len(events), 100):
        await settled(runtime, await api.post("/v1/ledger/events", json={"events": events[start:start + 100]}))
    for _ in range(duplicates):  # the history grows; nothing changes
        for start in range(0, len(events), 100):
            await settled(runtime, await api.post("/v1/ledger/events", json={"events": events[start:start + 100]}))
    return run["id"], docs


async def scene(runtime, api, name: str, documents: int, duplicates: int) -> Scene:
    await settled(runtime, await api.put(f"/v1/workflows/wf_{name}/blocks/b", json={"type": "extract", "config": {}}))
    exp = await settled(runtime, await api.post("/v1/workflows/experiments", json={
        "workflow_id": f"wf_{name}", "block_id": "b", "n_consensus": 3, "name": name,
        "documents": [{"handle_inputs": {"doc": {"type": "json", "data": {"n": i}}}} for i in range(documents)]}))
    prior, _ = await scored_run(runtime, api, exp["id"], 0)
    run, docs = await scored_run(runtime, api, exp["id"], duplicates)
    return Scene(run, prior, exp["id"], docs)


@pytest.fixture
async def scenes(runtime, api):
    """Built with the projector running; measured without it (nothing else reads meanwhile)."""
    async with projecting(runtime):
        small = await scene(runtime, api, "small", 10, 0)
        large = await scene(runtime, api, "large", 50, 2)
    return small, large


async def cost_of(api, path: str, **params) -> tuple[Cost, bytes]:
    """The request's own cost: asked again while something else of the process fell in the
    measured request (the API key's lookup, cached for a few seconds; the read-model
    version pointer, polled every second)."""
    await api.get(path, params=params)
    seen = []
    for _ in range(10):
        with counting() as cost:
            response = await api.get(path, params=params)
        assert response.status_code == 200, response.text
        if not any(table in sql for sql in cost.sql for table in BACKGROUND):
            seen.append((cost.statements, cost, response.content))
            if len(seen) == 3:
                break
    # the cheapest of three: a statement of another task (a heartbeat, a lease) that fell in
    # one measurement is not in all three, the request's own statements are
    _, cost, content = min(seen, key=lambda s: s[0])
    return cost, content


def same(a: Cost, b: Cost) -> bool:
    return (a.statements, a.rows, a.json_values) == (b.statements, b.rows, b.json_values)


async def test_one_documents_views_cost_the_same_whatever_the_run(scenes, api):
    small, large = scenes
    for view, extra in (("votes", {"target_path": "vendor"}), ("by_document", {})):
        on_small, _ = await cost_of(api, METRICS, run_id=small.run_id, view=view, document_id=small.docs[3], **extra)
        on_large, _ = await cost_of(api, METRICS, run_id=large.run_id, view=view, document_id=large.docs[3], **extra)
        assert same(on_small, on_large), (view, str(on_small), str(on_large), on_small.sql, on_large.sql)
        assert on_large.rows <= 12 and on_large.json_values <= 6, (view, on_large.sql)


async def test_a_targets_view_reads_that_targets_rows(scenes, api):
    small, large = scenes
    on_small, _ = await cost_of(api, METRICS, run_id=small.run_id, view="by_target", target_path="vendor")
    on_large, body = await cost_of(api, METRICS, run_id=large.run_id, view="by_target", target_path="vendor")
    # one row per document with the target, in the run and in the prior run; nothing else grows
    assert on_large.rows - on_small.rows == 2 * (len(large.docs) - len(small.docs)), (str(on_small), str(on_large))
    assert on_large.json_values - on_small.json_values == len(large.docs) - len(small.docs)  # their values
    assert on_large.statements == on_small.statements
    assert len(body) < 200 * len(large.docs)


async def test_an_experiments_latest_run_is_found_without_its_state(scenes, api):
    small, large = scenes
    on_small, _ = await cost_of(api, METRICS, experiment_id=small.experiment_id, view="votes",
                                document_id=small.docs[0], target_path="total")
    on_large, _ = await cost_of(api, METRICS, experiment_id=large.experiment_id, view="votes",
                                document_id=large.docs[0], target_path="total")
    assert same(on_small, on_large), (str(on_small), str(on_large))


async def test_pages_cost_their_page(scenes, api):
    small, large = scenes
    for path, params in (("/v1/workflows/experiments/results", {"limit": 5}),
                         ("/v1/workflows/experiments/runs", {"limit": 5, "experiment_id": None})):
        costs = []
        for s in (small, large):
            asked = {**params, "run_id": s.run_id} if "results" in path else {**params, "experiment_id": s.experiment_id}
            costs.append((await cost_of(api, path, **asked))[0])
        assert same(*costs), (path, *map(str, costs), [c.sql for c in costs])
    on_small, _ = await cost_of(api, "/v1/workflows/experiments", workflow_id="wf_small")
    on_large, body = await cost_of(api, "/v1/workflows/experiments", workflow_id="wf_large")
    assert on_small.statements == on_large.statements and on_small.rows == on_large.rows
    assert on_large.json_bytes < len(body) + 5_000, str(on_large)  # what it answers, and a few small columns


async def test_starting_a_verification_reads_nothing_of_the_run(scenes, api):
    _, large = scenes
    with counting() as cost:
        started = await api.post(f"/v1/ledger/runs/{large.run_id}/verifications")
    assert started.status_code == 202, started.text
    background = sum(table in sql for sql in cost.sql for table in BACKGROUND)
    assert cost.log_records == 0 and cost.json_values == 0 and cost.rows <= 3 + background, str(cost)


async def test_the_console_metrics_and_experiment_pages_cost_their_page(scenes, api, monkeypatch):
    from services.console.pages import metrics as metrics_page

    monkeypatch.setattr(metrics_page, "DOCUMENTS_SHOWN", 5)  # a page of the scored documents
    small, large = scenes
    login = await sign_in(api, KEY)
    assert login.status_code == 303, login.text
    costs = []
    for s in (small, large):
        cost, page = await cost_of(api, f"/console/runs/{s.run_id}/metrics", document_id=s.docs[1],
                                   target_path="vendor")
        assert b'class="vote"' in page and b'id="doc-pages"' in page  # votes link their events; pages
        costs.append(cost)
    assert same(*costs), (str(costs[0]), str(costs[1]), costs[0].sql, costs[1].sql)
    assert costs[1].log_reads == 0
    on_small, _ = await cost_of(api, f"/console/experiments/{small.experiment_id}")
    on_large, _ = await cost_of(api, f"/console/experiments/{large.experiment_id}")
    assert on_small.statements == on_large.statements and on_small.rows == on_large.rows
