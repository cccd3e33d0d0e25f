"""Pages bounded in bytes (docs/api.md, "What a request costs"): a page of experiments or
of results never answers more than `PAGE_MAX_BYTES`; it holds fewer items than `limit`
and its cursor continues, so paging by `after` and `before` (and the retab SDK's
auto-paging) still reaches every item once, in order."""
from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest
from retab import AsyncRetab

from projections.store.pagination import PAGE_MAX_BYTES, Page, PageRequest, encode_cursor
from services.api.routes.common import fit_page
from tests.costs import counting
from tests.integration.test_metrics_summary import settled
from tests.integration.test_read_your_writes import KEY, api, projecting, runtime  # noqa: F401 (fixtures)

EXPERIMENTS = "/v1/workflows/experiments"


def contract_sized_documents(tag: int, count: int = 140, text: int = 5_000) -> list[dict]:
    """~720 KB of documents as JSON: near the contract's 768 KiB for one experiment."""
    return [{"handle_inputs": {"doc": {"type": "json", "data": {"n": i, "tag": tag, "text": "x" * text}}}}
            for i in range(count)]


async def walk(api, path: str, params: dict, direction: str = "after") -> tuple[list[str], list[int]]:
    """Every item id by following the cursor; the byte size of each page."""
    ids, sizes, cursor = [], [], None
    while True:
        response = await api.get(path, params={**params, **({direction: cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        sizes.append(len(response.content))
        page = response.json()
        ids += [item["id"] for item in page["data"]] if direction == "after" else \
            [item["id"] for item in reversed(page["data"])]
        cursor = page["list_metadata"][direction]
        if cursor is None:
            return ids, sizes


async def test_a_page_of_contract_sized_experiments_fits_the_bound_and_the_cursor_goes_on(runtime, api):
    async with projecting(runtime):
        for workflow in ("wf_big", "wf_small"):
            await settled(runtime, await api.put(f"/v1/workflows/{workflow}/blocks/b",
                                                 json={"type": "extract", "config": {}}))
        made = []
        for tag in range(4):
            exp = await settled(runtime, await api.post(EXPERIMENTS, json={
                "workflow_id": "wf_big", "block_id": "b", "name": f"big {tag}", "documents": contract_sized_documents(tag)}))
            made.append(exp["id"])
        small = await settled(runtime, await api.post(EXPERIMENTS, json={"workflow_id": "wf_small", "block_id": "b", "name": "small"}))

        one = (await api.get(f"{EXPERIMENTS}/{made[0]}")).content
        assert 700_000 < len(one) < PAGE_MAX_BYTES  # one experiment is most of a page
        with counting() as cost:
            first = await api.get(EXPERIMENTS, params={"workflow_id": "wf_big", "limit": 30})
        assert len(first.content) <= PAGE_MAX_BYTES and len(first.json()["data"]) == 1
        assert first.json()["data"][0]["documents"] == (await api.get(f"{EXPERIMENTS}/{made[-1]}")).json()["documents"]
        assert cost.json_bytes < 2 * len(one), cost  # the page's item and the one that did not fit, no more

        newest_first, sizes = await walk(api, EXPERIMENTS, {"workflow_id": "wf_big", "limit": 30})
        assert newest_first == made[::-1] and max(sizes) <= PAGE_MAX_BYTES
        oldest_first, sizes = await walk(api, EXPERIMENTS, {"workflow_id": "wf_big", "limit": 30, "order": "asc"})
        assert oldest_first == made and max(sizes) <= PAGE_MAX_BYTES
        last = (await api.get(EXPERIMENTS, params={"workflow_id": "wf_big", "limit": 1, "order": "asc",
                                                   "after": encode_cursor(None, None)})).status_code
        assert last == 422  # a cursor this list did not hand out

        second = await api.get(EXPERIMENTS, params={"workflow_id": "wf_big", "limit": 30,
                                                    "after": first.json()["list_metadata"]["after"]})
        assert [e["id"] for e in second.json()["data"]] == [made[-2]]
        backwards = await api.get(EXPERIMENTS, params={"workflow_id": "wf_big", "limit": 30,
                                                       "before": second.json()["list_metadata"]["before"]})
        assert [e["id"] for e in backwards.json()["data"]] == [made[-1]]  # the page before the second

        smalls = await api.get(EXPERIMENTS, params={"workflow_id": "wf_small", "limit": 30})
        assert [e["id"] for e in smalls.json()["data"]] == [small["id"]]
        assert smalls.json()["list_metadata"] == {"before": None, "after": None}

        sdk = AsyncRetab(api_key=KEY, base_url="http://runledger", max_retries=0)
        sdk.client = httpx.AsyncClient(transport=api._transport, timeout=60)
        listed = await sdk.workflows.experiments.list(workflow_id="wf_big", limit=30)
        assert len(listed.data) == 1 and listed.has_more
        assert [e.id async for e in listed.auto_paging_iter()] == made[::-1]
        await sdk.client.aclose()


async def test_a_page_of_large_results_fits_the_bound(runtime, api):
    async with projecting(runtime):
        await settled(runtime, await api.put("/v1/workflows/wf_r/blocks/b", json={"type": "extract", "config": {}}))
        documents = [{"handle_inputs": {"doc": {"type": "json", "data": {"n": i, "text": "y" * 150_000}}}}
                     for i in range(5)]
        exp = await settled(runtime, await api.post(EXPERIMENTS, json={
            "workflow_id": "wf_r", "block_id": "b", "documents": documents, "n_consensus": 3}))
        run = await settled(runtime, await api.post(f"{EXPERIMENTS}/runs", json={"experiment_id": exp["id"]}))
        results = (await api.get(f"{EXPERIMENTS}/results", params={"run_id": run["id"], "limit": 1})).json()
        assert len(results["data"]) == 1  # a page of one, before the documents have an output
        output = {f"k{i:04}": "v" * 24 for i in range(4000)}  # ~136 KB of consensus value a document
        docs = (await api.get(f"{EXPERIMENTS}/results", params={"run_id": run["id"], "limit": 5})).json()["data"]
        events = [{"type": "DocumentPassCompleted", "run_id": run["id"],
                   "payload": {"document_id": doc["document_id"], "pass_index": i, "output": output}}
                  for doc in docs for i in range(3)]
        for event in events:
            await settled(runtime, await api.post("/v1/ledger/events", json={"events": [event]}))
        every, sizes = await walk(api, f"{EXPERIMENTS}/results", {"run_id": run["id"], "limit": 100, "order": "asc"})
        assert len(every) == len(set(every)) == 5 and len(sizes) > 1 and max(sizes) <= PAGE_MAX_BYTES
        back, _ = await walk(api, f"{EXPERIMENTS}/results", {"run_id": run["id"], "limit": 100, "order": "desc"})
        assert back == every[::-1]

        sdk = AsyncRetab(api_key=KEY, base_url="http://runledger", max_retries=0)
        sdk.client = httpx.AsyncClient(transport=api._transport, timeout=60)
        listed = await sdk.workflows.experiments.results.list(run_id=run["id"], limit=100, order="asc")
        assert [r.id async for r in listed.auto_paging_iter()] == every
        await sdk.client.aclose()


async def test_a_page_of_results_shows_what_each_result_shows_alone(runtime, api):
    """A page reads a slice of each document's state (`views.result_documents`, the
    database's JSON functions); one result is rendered from the whole state: they agree
    for documents in every condition, item for item."""
    async with projecting(runtime):
        await settled(runtime, await api.put("/v1/workflows/wf_s/blocks/b", json={"type": "extract", "config": {}}))
        documents = [{"handle_inputs": {"doc": {"type": "json", "data": {"n": i, "note": "é ✓"}}}} for i in range(5)]
        exp = await settled(runtime, await api.post(EXPERIMENTS, json={
            "workflow_id": "wf_s", "block_id": "b", "documents": documents, "n_consensus": 5}))
        run = await settled(runtime, await api.post(f"{EXPERIMENTS}/runs", json={"experiment_id": exp["id"]}))
        docs = [r["document_id"] for r in (await api.get(f"{EXPERIMENTS}/results", params={
            "run_id": run["id"], "order": "asc"})).json()["data"]]

        def passed(doc: str, i: int, output) -> dict:
            return {"type": "DocumentPassCompleted", "run_id": run["id"],
                    "payload": {"document_id": doc, "pass_index": i, "output": output}}

        def failed(doc: str, i: int, final: bool) -> dict:
            return {"type": "DocumentPassFailed", "run_id": run["id"], "payload": {
                "document_id": doc, "pass_index": i, "final": final, "error": {"message": f"pass {i} refused"}}}

        events = [passed(docs[0], i, {"total": 10 + (i == 4), "vendor": "Acme", "nested": [{"a": None}]})
                  for i in range(5)]  # completed, a consensus
        events += [failed(docs[1], i, True) for i in range(5)]  # error, its last error shown
        events += [passed(docs[2], 0, {"total": 1}), failed(docs[2], 3, True)]  # running: two passes of five
        events += [failed(docs[3], 1, False), passed(docs[3], 1, {"total": 2})]  # a pass that failed, then passed
        await settled(runtime, await api.post("/v1/ledger/events", json={"events": events}))  # docs[4]: untouched
        for order in ("asc", "desc"):
            page = (await api.get(f"{EXPERIMENTS}/results", params={"run_id": run["id"], "order": order})).json()
            assert len(page["data"]) == 5
            for item in page["data"]:
                alone = await api.get(f"{EXPERIMENTS}/results/{item['id']}")
                assert alone.status_code == 200 and alone.json() == item, (item["document_id"], order)
        shown = {item["document_id"]: item for item in page["data"]}
        assert shown[docs[0]]["handle_outputs"]["output"]["data"]["vendor"] == "Acme"
        assert shown[docs[1]]["lifecycle"]["status"] == "error" and shown[docs[1]]["handle_outputs"] == {}
        assert {i: p["status"] for i, p in shown[docs[2]]["passes"].items()} == {"0": "completed", "3": "failed"}
        assert shown[docs[3]]["passes"]["1"]["status"] == "completed"
        assert shown[docs[4]]["passes"] == {} and shown[docs[4]]["handle_inputs"]["doc"]["data"]["note"] == "é ✓"


def rows(n: int) -> list:
    return [SimpleNamespace(id_=f"id_{i}", sort_key_=i, size=100 + i) for i in range(n)]


@pytest.mark.parametrize("budget, fits", [(4096 + 10_000, 10), (4096 + 350, 3), (4096 + 1, 1)])
async def test_fit_page_keeps_the_rows_nearest_the_cursor_and_continues_after_them(budget, fits):
    page = Page(rows(10), None, None)
    found, items = await fit_page(page, PageRequest(limit=10), lambda row: b"x" * row.size, budget)
    assert [r.id_ for r in found.rows] == [f"id_{i}" for i in range(fits)] and len(items) == fits
    assert found.after == (None if fits == 10 else encode_cursor(fits - 1, f"id_{fits - 1}"))

    backward = Page(rows(10), encode_cursor(0, "id_0"), encode_cursor(9, "id_9"))
    found, items = await fit_page(backward, PageRequest(limit=10, before="c"), lambda row: b"x" * row.size, budget)
    kept = [f"id_{i}" for i in range(10 - fits, 10)]
    assert [r.id_ for r in found.rows] == kept and found.after == backward.after
    assert found.before == (backward.before if fits == 10 else encode_cursor(10 - fits, kept[0]))
