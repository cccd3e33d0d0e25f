"""Experiments: the list, and one experiment with its documents, its runs and its
score across runs. Bounded (docs/api.md, "What a request costs"): the list reads each
experiment's card and runs' columns, never a document list; the experiment page shows its
latest `RUNS_SHOWN` runs from their stored resources and its first documents, up to
`DOCUMENTS_SHOWN` or `DOCUMENT_BYTES_SHOWN` of their inputs, with the count of the rest."""
from __future__ import annotations

from urllib.parse import quote

import orjson
from fastapi import APIRouter, Depends, Request

from projections.store import views
from projections.store.pagination import PageRequest

from ...api.context import Ctx
from ...api.routes.experiments import experiment_of, render_experiment
from .. import charts
from ..render import html_page
from ..session import console_ctx

router = APIRouter()
PAGE_SIZE = 50
RUNS_SHOWN = 100
DOCUMENTS_SHOWN = 100
DOCUMENT_BYTES_SHOWN = 256 * 1024


@router.get("/console/experiments")
async def experiments_page(request: Request, ctx: Ctx = Depends(console_ctx)):
    workflow_id = request.query_params.get("workflow_id") or None
    page = PageRequest(PAGE_SIZE, "desc", request.query_params.get("before"), request.query_params.get("after"))
    async with ctx.connect() as conn:
        found = await views.list_experiments(conn, ctx.org_id, workflow_id, None, page)
        experiments = [await experiment_of(conn, ctx.org_id, views.card_of(row), with_documents=False)
                       for row in found.rows]
    return await html_page(request, "experiments.html", nav="experiments", experiments=experiments, page=found,
                  workflow_id=workflow_id)


@router.get("/console/experiments/{experiment_id}")
async def experiment_page(experiment_id: str, request: Request, ctx: Ctx = Depends(console_ctx)):
    experiment = await render_experiment(ctx, experiment_id, with_documents=False)
    filters = views.RunFilters(experiment_id=experiment_id)
    async with ctx.connect() as conn:
        found = await views.list_run_resources(conn, ctx.org_id, filters, PageRequest(RUNS_SHOWN, "desc"))
        documents = await views.experiment_documents(conn, experiment_id)
    runs = [orjson.loads(views.resource_text(row)) for row in found.rows]
    scored = [(run["id"], run["score"], f"/console/runs/{quote(run['id'])}/metrics")
              for run in reversed(runs) if run["lifecycle"]["status"] == "completed" and run["score"] is not None]
    shown = documents_shown(documents)
    return await html_page(request, "experiment.html", nav="experiments", experiment=experiment, runs=runs,
                  documents=shown, more_documents=len(documents) - len(shown),
                  chart=charts.score_line(scored) if scored else None)


def documents_shown(documents: list[dict]) -> list[dict]:
    """The first documents, as many as `DOCUMENTS_SHOWN` and `DOCUMENT_BYTES_SHOWN` of inputs allow (one at least)."""
    shown, spent = [], 0
    for doc in documents[:DOCUMENTS_SHOWN]:
        spent += len(orjson.dumps(doc.get("handle_inputs")))
        if shown and spent > DOCUMENT_BYTES_SHOWN:
            break
        shown.append(doc)
    return shown
