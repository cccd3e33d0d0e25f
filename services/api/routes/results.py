from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Query

from projections.store import views
from projections.store.metric_rows import get_run_head
from projections.store.pagination import PageRequest

from ..context import Ctx, context
from ..errors import not_found
from ..resources import ResultRun, result_resource
from .common import fit_page, list_response, page_request

router = APIRouter(prefix="/v1/workflows/experiments/results", tags=["results"])
STATES_AT_ONCE = 100
"""Document states read per statement while a page is rendered (the page stops reading
once its bytes are spent: a 1 MB page holds ~1,000 small results, ~150 large ones)."""


@router.get("")
async def list_results(run_id: str = Query(...), page: PageRequest = Depends(page_request),
                       ctx: Ctx = Depends(context)):
    """A page of the run's results, at most `PAGE_MAX_BYTES`: the run's stored resource,
    then what the page's documents show (`views.result_documents`: no pass outputs), a
    hundred at a time, until the page is full."""
    async with ctx.connect() as conn:
        run = await _run(conn, ctx, run_id)
        found = await views.list_results(conn, run_id, page)
        order = [row.document_id for row in (found.rows if page.before is None else reversed(found.rows))]
        place = {document_id: at for at, document_id in enumerate(order)}
        states: dict = {}

        async def render(row) -> bytes:
            if row.document_id not in states:
                at = place[row.document_id]
                states.update(await views.result_documents(conn, run_id, order[at:at + STATES_AT_ONCE]))
            return orjson.dumps(result_resource(run, states.pop(row.document_id), row.id_))

        found, items = await fit_page(found, page, render)
    return list_response(found, items)


@router.get("/{result_id}")
async def get_result(result_id: str, ctx: Ctx = Depends(context)):
    async with ctx.connect() as conn:
        found = await views.get_result(conn, ctx.org_id, result_id)
        if found is None:
            raise not_found("result", result_id)
        run_id, doc = found
        return result_resource(await _run(conn, ctx, run_id), doc)


async def _run(conn, ctx: Ctx, run_id: str) -> ResultRun:
    head = await get_run_head(conn, ctx.org_id, run_id)
    if head is None:
        raise not_found("run", run_id)
    return ResultRun.of(head.run_id, head.fields)
