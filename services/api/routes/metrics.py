from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query

from projections.store import views

from .. import metrics
from ..commands import load_experiment
from ..context import Ctx, context
from ..errors import invalid, not_found
from ..freshness import fingerprints_of
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
    if view == "summary":
        data = await summary_input(ctx, run_id, include_prior, prior_run_id)
    else:
        data = await _load(ctx, run_id, include_prior, prior_run_id)
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


async def summary_input(ctx: Ctx, run_id: str, include_prior: bool, prior_run_id: str | None) -> metrics.SummaryInput:
    """The read columns the projector wrote (no state decoded unless a row predates them),
    the documents' status and score columns, and the prior run's id and score columns."""
    async with ctx.connect() as conn:
        run = await views.get_run_summary(conn, ctx.org_id, run_id)
        if run is None:
            raise not_found("run", run_id)
        experiment = await views.get_experiment_freshness(conn, ctx.org_id, run.experiment_id)
        if experiment is None:
            raise not_found("experiment", run.experiment_id)
        block = await views.get_block_execution(conn, ctx.org_id, experiment.workflow_id, experiment.block_id)
        documents = await views.document_scores(conn, run_id, run.fields["filenames"])
        prior = await _prior(conn, ctx, run, prior_run_id, include_prior,
                             views.get_run_score, views.prior_completed_score)
        prior_docs = {d.document_id: d for d in await views.document_scores(conn, prior.run_id)} if prior else {}
    current = fingerprints_of(experiment.fields, block)
    return metrics.SummaryInput(run.fields, current, documents, prior, prior_docs)


async def _load(ctx: Ctx, run_id: str, include_prior: bool, prior_run_id: str | None) -> metrics.MetricsInput:
    """Whole states: the run's, every document's (all passes and the consensus tree)."""
    run = await load_run(ctx, run_id)
    experiment = await load_experiment(ctx, run.spec["experiment_id"])
    async with ctx.connect() as conn:
        block = await views.get_block(conn, ctx.org_id, experiment.workflow_id, experiment.block_id)
        documents = await views.run_documents_of(conn, run.run_id)
        prior = await _prior(conn, ctx, run, prior_run_id, include_prior, views.get_run, views.prior_completed_run)
        prior_docs = {d.document_id: d for d in await views.run_documents_of(conn, prior.run_id)} if prior else {}
    return metrics.MetricsInput(run, documents, experiment, block, prior, prior_docs)


async def _prior(conn, ctx: Ctx, run, prior_run_id: str | None, include_prior: bool, by_id, latest_before):
    """The run compared with: `prior_run_id` (404 unless the caller's), else the latest
    completed run before `run` (unless `include_prior` is false). `by_id` and
    `latest_before` read it as the view needs it (its score, or its whole state)."""
    if prior_run_id:
        prior = await by_id(conn, ctx.org_id, prior_run_id)
        if prior is None:
            raise not_found("run", prior_run_id)
        return prior
    return await latest_before(conn, ctx.org_id, run) if include_prior else None
