"""Experiments: the list, and one experiment with its documents, its runs and its
score across runs."""
from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Depends, Request

from projections.store import views
from projections.store.pagination import PageRequest

from ...api.context import Ctx
from ...api.resources import run_resource
from ...api.routes.experiments import render_experiment
from .. import charts
from ..render import render
from ..session import console_ctx

router = APIRouter()
PAGE_SIZE = 50
RUNS_SHOWN = 100


@router.get("/console/experiments")
async def experiments_page(request: Request, ctx: Ctx = Depends(console_ctx)):
    workflow_id = request.query_params.get("workflow_id") or None
    page = PageRequest(PAGE_SIZE, "desc", request.query_params.get("before"), request.query_params.get("after"))
    async with ctx.connect() as conn:
        found = await views.list_experiments(conn, ctx.org_id, workflow_id, None, page)
    experiments = [await render_experiment(ctx, row.id_) for row in found.rows]
    return render(request, "experiments.html", nav="experiments", experiments=experiments, page=found,
                  workflow_id=workflow_id)


@router.get("/console/experiments/{experiment_id}")
async def experiment_page(experiment_id: str, request: Request, ctx: Ctx = Depends(console_ctx)):
    experiment = await render_experiment(ctx, experiment_id)
    filters = views.RunFilters(experiment_id=experiment_id)
    async with ctx.connect() as conn:
        found = await views.list_runs(conn, ctx.org_id, filters, PageRequest(RUNS_SHOWN, "desc"))
        full = await views.get_experiment(conn, ctx.org_id, experiment_id)
    runs = [run_resource(views.run_from_row(row)) for row in found.rows]
    scored = [(run["id"], run["score"], f"/console/runs/{quote(run['id'])}/metrics")
              for run in reversed(runs) if run["lifecycle"]["status"] == "completed" and run["score"] is not None]
    return render(request, "experiment.html", nav="experiments", experiment=experiment, runs=runs,
                  documents=full.documents if full else (), chart=charts.score_line(scored) if scored else None)
