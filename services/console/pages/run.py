"""One run: overview (lifecycle, timing, counters, frozen definition, documents),
its timeline with the as-of slider, and cancel."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse

from events.bounds import MAX_DOCUMENTS
from projections.domain.state import RUN_TERMINAL
from projections.store import live_views
from projections.store.pagination import PageRequest

from ...api import commands
from ...api.context import Ctx
from ...api.errors import invalid, not_found
from ...api.resources import result_resource, run_resource
from ...api.routes.runs import load_run
from ...api.time_travel import run_as_of
from .. import history, live
from ..render import render
from ..session import checked_form, console_ctx

router = APIRouter()


PAGE = 50  # documents per page of a run's overview


@dataclass(frozen=True)
class RunFacts:
    """What a document's result shows of its run (services/api/resources.result_resource),
    read from the run's stored resource: no run state is decoded for a page."""

    run_id: str
    status: str
    cancel_reason: str | None
    spec: dict
    created_at: datetime
    completed_at: datetime | None

    @classmethod
    def of(cls, resource: dict) -> RunFacts:
        timing, lifecycle = resource["timing"], resource["lifecycle"]
        return cls(resource["id"], lifecycle["status"], lifecycle.get("reason"),
                   {"experiment_id": resource["experiment_id"], "block_type": resource["block_type"]},
                   datetime.fromisoformat(timing["created_at"]), _when(timing["completed_at"]))


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def run_values(shown: live_views.RunShown) -> dict:
    run = dict(shown.resource, passes_done=shown.passes)
    run["passes_planned"] = run["n_consensus"] * run["total_document_count"]
    return run


def document_rows(run: dict, documents) -> list[dict]:
    facts = RunFacts.of(run)
    return [dict(result_resource(facts, shown.document), idx=shown.idx) for shown in documents]


async def overview(ctx: Ctx, run_id: str, page: PageRequest) -> dict:
    """The run's head (its resource and counters) and one page of its documents. The
    version is read first: a write landing meanwhile is drawn by the next poll."""
    async with ctx.connect() as conn:
        version = await live_views.run_version(conn, ctx.org_id, run_id)
        shown = await live_views.run_shown(conn, ctx.org_id, run_id) if version is not None else None
        if shown is None:
            raise not_found("run", run_id)
        documents = await live_views.document_page(conn, run_id, page)
    run = run_values(shown)
    results = document_rows(run, documents.rows)
    span = (results[0]["idx"], results[-1]["idx"]) if results else (0, -1)
    return dict(run=run, results=results, documents=documents, span=span, token=live.token(ctx, version),
                terminal=run["lifecycle"]["status"] in RUN_TERMINAL)


@router.get("/console/runs/{run_id}")
async def run_page(run_id: str, request: Request, ctx: Ctx = Depends(console_ctx)):
    values = await overview(ctx, run_id, _document_page(request))
    return render(request, "run.html", nav="runs", tab="overview", **values)


@router.get("/console/runs/{run_id}/live")
async def run_live(run_id: str, request: Request, ctx: Ctx = Depends(console_ctx)):
    """The run page's poll: 204 while the run's version stands (one row read); otherwise
    its head, and the documents of the page shown (`lo`..`hi`) written since (all of them
    when the run's phase moved: a document's shown status follows its run's, `_phase`)."""
    params = request.query_params
    since = live.since(ctx, params.get("since"))
    span = (_document_index(params.get("lo"), 0, "lo"), _document_index(params.get("hi"), PAGE - 1, "hi"))
    async with ctx.connect() as conn:
        version = await live_views.run_version(conn, ctx.org_id, run_id)
        if version is None:
            raise not_found("run", run_id)
        if since == version:
            return live.unchanged()
        if since is None and params.get("since"):
            return live.reload()
        shown = await live_views.run_shown(conn, ctx.org_id, run_id)
        if shown is None:
            raise not_found("run", run_id)
        run = run_values(shown)
        moved = since is None or _phase(params.get("status")) != _phase(run["lifecycle"]["status"])
        documents = await live_views.changed_documents(conn, run_id, *span, -1 if moved else since)
    return render(request, "_run_live.html", run=run, results=document_rows(run, documents), span=span,
                  token=live.token(ctx, version), terminal=run["lifecycle"]["status"] in RUN_TERMINAL)


def _phase(status: str | None) -> str | None:
    """What a document's shown status reads of its run's (resources.document_status): a
    pending document is queued while its run is queued or running, cancelled once it ended."""
    return {"queued": "active", "running": "active", "cancelled": "ended", "error": "ended"}.get(status, status)


def _document_page(request: Request) -> PageRequest:
    params = request.query_params
    before, after = params.get("before"), params.get("after")
    return PageRequest(PAGE, "asc", _document_index(before, None, "before"), _document_index(after, None, "after"))


def _document_index(raw: str | None, default: int | None, name: str) -> int | None:
    if raw is None:
        return default
    try:
        return max(-1, min(int(raw), MAX_DOCUMENTS))
    except ValueError:
        raise invalid(f"{name} must be a document index", field=name) from None


@router.post("/console/runs/{run_id}/cancel")
async def cancel(run_id: str, request: Request, ctx: Ctx = Depends(console_ctx)):
    reason = (await checked_form(request)).get("reason", "").strip() or "cancelled from the console"
    positions = await commands.cancel_run(ctx, run_id, reason[:500])
    await ctx.ledger.settle(positions)  # read-your-writes: the page after the redirect shows it cancelled
    return RedirectResponse(f"/console/runs/{quote(run_id)}", 303)


@router.get("/console/runs/{run_id}/timeline")
async def timeline_page(run_id: str, request: Request, ctx: Ctx = Depends(console_ctx)):
    run = await load_run(ctx, run_id)
    entries = await history.timeline(ctx, run_id)
    kind = request.query_params.get("type") or None
    outcome = request.query_params.get("outcome") or None
    shown = [e for e in entries if (kind is None or e.type == kind)
             and (outcome is None or (outcome == "accepted") == e.accepted)]
    types = sorted({e.type for e in entries})
    return render(request, "timeline.html", nav="runs", tab="timeline", run=run_resource(run), entries=shown,
                  total=len(entries), types=types, kind=kind, outcome=outcome,
                  last=entries[-1] if entries else None)


@router.get("/console/runs/{run_id}/as-of")
async def as_of(run_id: str, request: Request, ctx: Ctx = Depends(console_ctx)):
    """The run as it was after its i-th event (the slider's value), refolded by time travel."""
    run = await load_run(ctx, run_id)
    rows = await history.event_rows(ctx, run_id)
    index = _index(request.query_params.get("i"), len(rows))
    entry = (await asyncio.to_thread(history.fold_timeline, rows[: index + 1]))[-1]
    then = await run_as_of(ctx, run, entry.position)
    return render(request, "_as_of.html", run=run_resource(run), then=then, entry=entry, total=len(rows))


def _index(raw: str | None, count: int) -> int:
    try:
        index = int(raw if raw is not None else count - 1)
    except ValueError:
        index = -1
    if not 0 <= index < count:
        raise invalid(f"i must be an event index, 0..{count - 1}", field="i")
    return index
