"""`GET /v1/workflows/experiments/metrics`: each view reads what it shows (docs/api.md,
"What a request costs"): the summary the run's read columns and its documents' score
columns; `by_document` and `votes` one document's rows; `by_target` one path's or one
label's target rows. None decodes a run's state or every document of a run."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from projections.store import metric_rows as rows, views
from projections.store.pagination import PageRequest

from .. import metrics
from ..context import Ctx, context
from ..errors import invalid, not_found
from ..freshness import Fingerprints, fingerprints_of

router = APIRouter(prefix="/v1/workflows/experiments/metrics", tags=["metrics"])


@router.get("")
async def get_metrics(
    run_id: str | None = None, experiment_id: str | None = Query(None, description="its latest run"),
    view: Literal["summary", "by_document", "by_target", "votes"] = "summary",
    document_id: str | None = None, target_path: str | None = None,
    include_prior: bool = True, prior_run_id: str | None = None, allow_stale: bool = False,
    ctx: Ctx = Depends(context),
):
    """The answer's bytes are those FastAPI renders for its dict, without the recursive
    `jsonable_encoder` walk (its values are JSON already: ~0.1 ms a document of a summary)."""
    return JSONResponse(await answer(ctx, run_id, experiment_id, view, document_id, target_path, include_prior,
                                     prior_run_id, allow_stale))


async def answer(ctx: Ctx, run_id: str | None, experiment_id: str | None = None, view: str = "summary",
                 document_id: str | None = None, target_path: str | None = None, include_prior: bool = True,
                 prior_run_id: str | None = None, allow_stale: bool = False) -> dict:
    """The metrics view asked, as a dict (the route, its fast path and the console use it)."""
    if run_id is None and experiment_id is None:
        raise invalid("run_id (or experiment_id, for its latest run) is required")
    if run_id is None:
        async with ctx.connect() as conn:
            if await views.get_experiment_freshness(conn, ctx.org_id, experiment_id) is None:
                raise not_found("experiment", experiment_id)  # 404 unless it is the caller's
            run_id = await views.latest_run_id(conn, ctx.org_id, experiment_id)
        if run_id is None:
            return metrics.no_metrics(experiment_id, f"experiment {experiment_id} has no runs yet")
    if view == "summary":
        data = await summary_input(ctx, run_id, include_prior, prior_run_id)
        return metrics.stale_answer(data.run, data.current, allow_stale) or metrics.summary(data)
    if view == "by_target":
        return await _by_target(ctx, run_id, include_prior, prior_run_id, allow_stale, target_path)
    return await _of_document(ctx, view, run_id, include_prior, prior_run_id, allow_stale, document_id, target_path)


async def summary_input(ctx: Ctx, run_id: str, include_prior: bool, prior_run_id: str | None,
                        page: PageRequest | None = None) -> metrics.SummaryInput:
    """The read columns the projector wrote (no state decoded unless a row predates them),
    the documents' status and score columns, and the prior run's id and score columns.
    `page`: one page of the scored documents only (the console), the prior run's rows of
    those documents, and the page's cursors in `SummaryInput.page`."""
    async with ctx.connect() as conn:
        run = await _summary_of(conn, ctx, run_id)
        current = await _current(conn, ctx, run.experiment_id)
        prior = await _prior(conn, ctx, run, prior_run_id, include_prior)
        if page is None:
            documents = await views.document_scores(conn, run_id, run.fields["filenames"])
            prior_docs = await views.document_scores(conn, prior.run_id) if prior else []
        else:
            found = await views.scored_documents_page(conn, run_id, page)
            names = run.fields["filenames"]
            documents = [views.DocumentScore(r.id_, names.get(r.id_, ""), "completed", r.score) for r in found.rows]
            prior_docs = await views.scores_of(conn, prior.run_id, [d.document_id for d in documents]) if prior else []
    data = metrics.SummaryInput(run.fields, current, documents, prior, {d.document_id: d for d in prior_docs})
    data.page = found if page is not None else None
    return data


async def _of_document(ctx: Ctx, view: str, run_id: str, include_prior: bool, prior_run_id: str | None,
                       allow_stale: bool, document_id: str | None, target_path: str | None):
    """`by_document` and `votes`: the run's resource, then one document's rows and the
    prior run's rows of the same document."""
    async with ctx.connect() as conn:
        run = await rows.get_run_head(conn, ctx.org_id, run_id)
        if run is None:
            raise not_found("run", run_id)
        current = await _current(conn, ctx, run.experiment_id)
        prior = await _prior(conn, ctx, run, prior_run_id, include_prior)
        stale = metrics.stale_answer(run.staleness(), current, allow_stale)
        if stale:
            return stale
        document_id = metrics.require(document_id, "document_id")
        doc = await rows.document_consensus(conn, run_id, document_id, with_consensus=view == "by_document")
        if doc is None:
            raise not_found("document", document_id)
        if view == "by_document":
            prior_score = await rows.document_score(conn, prior.run_id, document_id) if prior else None
            prior_targets = await rows.target_scores(conn, prior.run_id, document_id) if prior else {}
            return metrics.by_document(run_id, doc, prior_score, prior_targets)
        path = metrics.require(target_path, "target_path")
        target = await rows.target_votes(conn, run_id, document_id, path)
        if target is None:
            raise not_found("target", path)
        prior_score = await rows.target_score(conn, prior.run_id, document_id, path) if prior else None
    return metrics.votes(run_id, doc, path, target, prior_score)


async def _by_target(ctx: Ctx, run_id: str, include_prior: bool, prior_run_id: str | None, allow_stale: bool,
                     target_path: str | None):
    """One path's target rows of the run (or, for a classifier or split run, one label's),
    the run's aggregate, and the prior run's rows of the same path or label."""
    async with ctx.connect() as conn:
        run = await _summary_of(conn, ctx, run_id)
        current = await _current(conn, ctx, run.experiment_id)
        prior = await _prior(conn, ctx, run, prior_run_id, include_prior)
        stale = metrics.stale_answer(run.fields, current, allow_stale)
        if stale:
            return stale
        path = metrics.require(target_path, "target_path")
        order = {document_id: i for i, document_id in enumerate(run.fields["filenames"])}  # in document order
        found = await rows.path_rows(conn, run_id, path, order)
        aggregate = await rows.run_metrics(conn, run_id)
        confusion = None if found else metrics.is_label(run.fields["block_type"], aggregate, path)
        if confusion is not None:
            own = await rows.label_scores(conn, run_id, path, order)
            theirs = await rows.label_scores(conn, prior.run_id, path) if prior else []
            return metrics.label_target(run.fields, path, own, theirs, confusion)
        prior_metrics = await rows.run_metrics(conn, prior.run_id) if prior else None
        prior_scores = await rows.path_scores(conn, prior.run_id, path) if prior else {}
    return metrics.by_target(run.fields, path, found, aggregate, prior_metrics, prior_scores)


async def _summary_of(conn, ctx: Ctx, run_id: str) -> views.RunSummary:
    run = await views.get_run_summary(conn, ctx.org_id, run_id)
    if run is None:
        raise not_found("run", run_id)
    return run


async def _current(conn, ctx: Ctx, experiment_id: str) -> Fingerprints:
    """The experiment's current fingerprints (404 when it is gone)."""
    experiment = await views.get_experiment_freshness(conn, ctx.org_id, experiment_id)
    if experiment is None:
        raise not_found("experiment", experiment_id)
    block = await views.get_block_execution(conn, ctx.org_id, experiment.workflow_id, experiment.block_id)
    return fingerprints_of(experiment.fields, block)


async def _prior(conn, ctx: Ctx, run, prior_run_id: str | None, include_prior: bool) -> views.RunScore | None:
    """The run compared with: `prior_run_id` (404 unless the caller's), else the latest
    completed run before `run` (unless `include_prior` is false): its id and score."""
    if prior_run_id:
        prior = await views.get_run_score(conn, ctx.org_id, prior_run_id)
        if prior is None:
            raise not_found("run", prior_run_id)
        return prior
    return await views.prior_completed_score(conn, ctx.org_id, run) if include_prior else None
