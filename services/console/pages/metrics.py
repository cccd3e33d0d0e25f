"""A run's metrics: likelihood bars, per-document scores, one field's votes across
passes (each linked to the event that carried it), the confusion matrix, the prior
run's score, and the stale / no-metrics states in words. Numbers come from the API's
metrics views, unchanged; the scored documents are listed `DOCUMENTS_SHOWN` at a time
(keyset-paged), so the page costs its page whatever the run's size."""
from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Request

from projections.store import metric_rows, views
from projections.store.pagination import PageRequest

from ...api import metrics
from ...api.context import Ctx, require
from ...api.metrics import LABEL_BLOCKS
from ...api.routes import metrics as api_metrics
from ..render import html_page
from ..session import console_ctx

router = APIRouter()
DOCUMENTS_SHOWN = 100
"""Scored documents listed a page at a time (the run's summary counts them all)."""


async def metrics_view(ctx: Ctx, run_id: str, view: str = "summary", document_id: str | None = None,
                       target_path: str | None = None, allow_stale: bool = False) -> dict:
    """What `GET /v1/workflows/experiments/metrics` answers for this run."""
    return await api_metrics.answer(ctx, run_id, None, view, document_id, target_path, True, None, allow_stale)


@router.get("/console/runs/{run_id}/metrics")
async def metrics_page(run_id: str, request: Request, ctx: Ctx = Depends(console_ctx)):
    run = orjson.loads(await require(ctx, views.get_run_resource, "run", run_id))  # stored, ~1 KB
    params = request.query_params
    allow_stale = params.get("allow_stale") == "true"
    page = PageRequest(DOCUMENTS_SHOWN, "asc", params.get("before"), params.get("after"))
    data = await api_metrics.summary_input(ctx, run_id, True, None, page)
    summary = metrics.stale_answer(data.run, data.current, allow_stale) or metrics.summary(data)
    values = dict(run=run, summary=summary, allow_stale=allow_stale, labels=run["block_type"] in LABEL_BLOCKS,
                  documents_page=data.page)
    document_id = params.get("document_id")
    if summary.get("kind") == "summary" and document_id:
        values["document"] = await metrics_view(ctx, run_id, "by_document", document_id, allow_stale=allow_stale)
        target = params.get("target_path")
        if target:
            values["votes"] = await metrics_view(ctx, run_id, "votes", document_id, target, allow_stale)
            async with ctx.connect() as conn:  # this document's pass events alone, from the event index
                values["pass_events"] = await metric_rows.pass_events(conn, run_id, document_id)
    if summary.get("kind") == "summary" and values["labels"]:
        values["matrix"] = confusion_matrix(summary["aggregate"])
    return await html_page(request, "metrics.html", nav="runs", tab="metrics", **values)


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
