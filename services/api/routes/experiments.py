from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response

from projections.store import views
from projections.store.pagination import PageRequest

from .. import commands
from ..bodies import CreateExperimentBody, UpdateExperimentBody
from ..context import Ctx, context
from ..freshness import freshness
from ..resources import experiment_resource
from .common import envelope, mark_positions, page_request

router = APIRouter(prefix="/v1/workflows/experiments", tags=["experiments"])


async def render_experiment(ctx: Ctx, experiment_id: str) -> dict:
    exp = await commands.load_experiment(ctx, experiment_id)
    async with ctx.connect() as conn:
        block = await views.get_block(conn, ctx.org_id, exp.workflow_id, exp.block_id)
        last = await views.latest_run(conn, ctx.org_id, exp.experiment_id)
        scored = last if last is None or last.status == "completed" else await views.latest_run(
            conn, ctx.org_id, exp.experiment_id, status="completed")
    return experiment_resource(exp, block, last, scored, freshness(exp, block, last))


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
    async with ctx.connect() as conn:
        found = await views.list_experiments(conn, ctx.org_id, workflow_id, block_id, page)
    data = [await render_experiment(ctx, row.id_) for row in found.rows]
    return {**envelope(found, lambda row: row), "data": data}


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
