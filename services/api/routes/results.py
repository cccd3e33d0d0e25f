from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from projections.store import views
from projections.store.pagination import PageRequest
from projections.store.serialize import document_from_json

from ..context import Ctx, context
from ..errors import not_found
from ..resources import result_resource
from .common import envelope, page_request
from .runs import load_run

router = APIRouter(prefix="/v1/workflows/experiments/results", tags=["results"])


@router.get("")
async def list_results(run_id: str = Query(...), page: PageRequest = Depends(page_request),
                       ctx: Ctx = Depends(context)):
    run = await load_run(ctx, run_id)
    async with ctx.connect() as conn:
        found = await views.list_results(conn, run_id, page)
    return envelope(found, lambda row: result_resource(run, document_from_json(row.state)))


@router.get("/{result_id}")
async def get_result(result_id: str, ctx: Ctx = Depends(context)):
    async with ctx.connect() as conn:
        found = await views.get_result(conn, ctx.org_id, result_id)
    if found is None:
        raise not_found("result", result_id)
    run_id, doc = found
    return result_resource(await load_run(ctx, run_id), doc)
