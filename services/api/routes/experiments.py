from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Query, Response

from projections.store import views
from projections.store.pagination import PageRequest

from .. import commands
from ..bodies import CreateExperimentBody, UpdateExperimentBody
from ..context import Ctx, context
from ..errors import not_found
from ..freshness import freshness_of
from ..resources import experiment_resource_of
from .common import fit_page, list_response, mark_positions, page_request

router = APIRouter(prefix="/v1/workflows/experiments", tags=["experiments"])


async def render_experiment(ctx: Ctx, experiment_id: str, with_documents: bool = True) -> dict:
    """The experiment resource (404 unless the caller's), read from its card, its block's
    execution column and its runs' columns: no state decoded; `with_documents` reads the
    document list alone (the database extracts it)."""
    async with ctx.connect() as conn:
        card = await views.get_experiment_card(conn, ctx.org_id, experiment_id)
        if card is None:
            raise not_found("experiment", experiment_id)
        return await experiment_of(conn, ctx.org_id, card, with_documents)


async def experiment_of(conn, org_id: str, card: dict, with_documents: bool = True) -> dict:
    block = await views.get_block_execution(conn, org_id, card["workflow_id"], card["block_id"])
    last, score = await views.latest_runs(conn, org_id, card["id"])
    documents = await views.experiment_documents(conn, card["id"]) if with_documents else None
    return experiment_resource_of(card, block, last.run_id if last else None, last.status if last else None, score,
                                  freshness_of(card, block, card["document_count"], last), documents)


@router.post("", status_code=201)
async def create_experiment(body: CreateExperimentBody, response: Response, ctx: Ctx = Depends(context)):
    experiment_id, positions = await commands.create_experiment(ctx, body)
    mark_positions(response, positions)
    return await render_experiment(ctx, experiment_id)


@router.get("")
async def list_experiments(
    workflow_id: str = Query(...), block_id: str | None = Query(None),
    page: PageRequest = Depends(page_request), ctx: Ctx = Depends(context),
):
    """A page of experiments, each with its document list: at most `PAGE_MAX_BYTES` (a
    page of contract-sized experiments holds fewer than `limit`; `after` continues)."""
    async with ctx.connect() as conn:
        found = await views.list_experiments(conn, ctx.org_id, workflow_id, block_id, page)

        async def render(row) -> bytes:
            return orjson.dumps(await experiment_of(conn, ctx.org_id, views.card_of(row)))

        found, items = await fit_page(found, page, render)
    return list_response(found, items)


@router.get("/{experiment_id}")
async def get_experiment(experiment_id: str, ctx: Ctx = Depends(context)):
    return await render_experiment(ctx, experiment_id)


@router.patch("/{experiment_id}")
async def update_experiment(experiment_id: str, body: UpdateExperimentBody, response: Response,
                            ctx: Ctx = Depends(context)):
    mark_positions(response, await commands.update_experiment(ctx, experiment_id, body))
    return await render_experiment(ctx, experiment_id)


@router.delete("/{experiment_id}", status_code=204)
async def delete_experiment(experiment_id: str, response: Response, ctx: Ctx = Depends(context)):
    mark_positions(response, await commands.delete_experiment(ctx, experiment_id))
    response.status_code = 204
    return None
