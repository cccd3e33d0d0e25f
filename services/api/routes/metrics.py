from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query

from projections import views

from .. import metrics
from ..commands import load_experiment
from ..context import Ctx, context
from ..errors import invalid, not_found
from .runs import load_run

router = APIRouter(prefix="/v1/workflows/experiments/metrics", tags=["metrics"])


@router.get("")
async def get_metrics(
    run_id: str | None = None, experiment_id: str | None = Query(None, description="its latest run"),
    view: Literal["summary", "by_document", "by_target", "votes"] = "summary",
    document_id: str | None = None, target_path: str | None = None,
    include_prior: bool = True, prior_run_id: str | None = None, allow_stale: bool = False,
    ctx: Ctx = Depends(context),
):
    if run_id is None and experiment_id is None:
        raise invalid("run_id (or experiment_id, for its latest run) is required")
    if run_id is None:
        await load_experiment(ctx, experiment_id)  # 404 unless it is the caller's
        async with ctx.connect() as conn:
            latest = await views.latest_run(conn, ctx.org_id, experiment_id)
        if latest is None:
            return metrics.no_metrics(experiment_id, f"experiment {experiment_id} has no runs yet")
        run_id = latest.run_id
    data = await _load(ctx, run_id, include_prior, prior_run_id, scores_only=view == "summary")
    problem = metrics.stale_or_missing(data)
    if problem and not (allow_stale and problem["kind"] == "stale_metrics"):
        return problem
    if view == "summary":
        return metrics.summary(data)
    if view == "by_document":
        return metrics.by_document(data, document_id)
    if view == "by_target":
        return metrics.by_target(data, target_path)
    return metrics.votes(data, document_id, target_path)


async def _load(ctx: Ctx, run_id: str, include_prior: bool, prior_run_id: str | None,
                scores_only: bool = False) -> metrics.MetricsInput:
    """`scores_only` (the summary): documents as their row's status and score, not their
    whole states (all passes and the consensus tree: ~100x the bytes)."""
    run = await load_run(ctx, run_id)
    experiment = await load_experiment(ctx, run.spec["experiment_id"])
    documents_of = views.document_scores if scores_only else _states
    async with ctx.connect() as conn:
        block = await views.get_block(conn, ctx.org_id, experiment.workflow_id, experiment.block_id)
        documents = await documents_of(conn, run)
        if prior_run_id:
            prior = await views.get_run(conn, ctx.org_id, prior_run_id)
            if prior is None:
                raise not_found("run", prior_run_id)
        else:
            prior_of = views.prior_completed_score if scores_only else views.prior_completed_run
            prior = await prior_of(conn, ctx.org_id, run) if include_prior else None
        prior_docs = {d.document_id: d for d in await documents_of(conn, prior)} if prior else {}
    return metrics.MetricsInput(run, documents, experiment, block, prior, prior_docs)


async def _states(conn, run):
    return await views.run_documents_of(conn, run.run_id)
