"""A run's metrics: likelihood bars, per-document scores, one field's votes across
passes (each linked to the event that carried it), the confusion matrix, the prior
run's score, and the stale / no-metrics states in words. Numbers come from the API's
metrics views, unchanged."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from ...api.context import Ctx
from ...api.metrics import LABEL_BLOCKS
from ...api.resources import run_resource
from ...api.routes import metrics as api_metrics
from ...api.routes.runs import load_run
from .. import history
from ..render import render
from ..session import console_ctx

router = APIRouter()


async def metrics_view(ctx: Ctx, run_id: str, view: str = "summary", document_id: str | None = None,
                       target_path: str | None = None, allow_stale: bool = False) -> dict:
    """What `GET /v1/workflows/experiments/metrics` answers for this run."""
    return await api_metrics.get_metrics(run_id=run_id, experiment_id=None, view=view, document_id=document_id,
                                         target_path=target_path, include_prior=True, prior_run_id=None,
                                         allow_stale=allow_stale, ctx=ctx)


@router.get("/console/runs/{run_id}/metrics")
async def metrics_page(run_id: str, request: Request, ctx: Ctx = Depends(console_ctx)):
    state = await load_run(ctx, run_id)
    run = run_resource(state)
    params = request.query_params
    allow_stale = params.get("allow_stale") == "true"
    summary = await metrics_view(ctx, run_id, allow_stale=allow_stale)
    values = dict(run=run, summary=summary, allow_stale=allow_stale, labels=run["block_type"] in LABEL_BLOCKS)
    document_id = params.get("document_id")
    if summary.get("kind") == "summary" and document_id:
        values["document"] = await metrics_view(ctx, run_id, "by_document", document_id, allow_stale=allow_stale)
        target = params.get("target_path")
        if target:
            values["votes"] = await metrics_view(ctx, run_id, "votes", document_id, target, allow_stale)
            values["pass_events"] = await history.pass_events(ctx, state, document_id)
    if summary.get("kind") == "summary" and values["labels"]:
        values["matrix"] = confusion_matrix(summary["aggregate"])
    return render(request, "metrics.html", nav="runs", tab="metrics", **values)


def confusion_matrix(aggregate: dict) -> dict:
    """Rows: the consensus label; columns: what the votes said. The diagonal is the
    share that agreed, the rest the flows (aggregate.confusion)."""
    labels = sorted(aggregate.get("diag", {}))
    cells = {(label, label): score for label, score in aggregate.get("diag", {}).items()}
    for flow in aggregate.get("flows", ()):
        cells[(flow["source"], flow["target"])] = flow["score"]
        for label in (flow["source"], flow["target"]):
            if label not in labels:
                labels.append(label)
    return {"labels": labels, "cells": cells}
