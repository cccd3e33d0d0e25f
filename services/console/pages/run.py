"""One run: overview (lifecycle, timing, counters, frozen definition, documents),
its timeline with the as-of slider, and cancel."""
from __future__ import annotations

import asyncio
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse

from projections.domain.state import RUN_TERMINAL
from projections.store import views

from ...api import commands
from ...api.context import Ctx
from ...api.errors import invalid
from ...api.resources import result_resource, run_resource
from ...api.routes.runs import load_run
from ...api.time_travel import run_as_of
from .. import history, live
from ..render import render
from ..session import checked_form, console_ctx

router = APIRouter()


async def overview(ctx: Ctx, run_id: str) -> dict:
    run = await load_run(ctx, run_id)
    async with ctx.connect() as conn:
        documents = await views.run_documents_of(conn, run_id)
    results = [result_resource(run, doc) for doc in documents]
    resource = run_resource(run)
    resource["passes_done"] = sum(len(doc.passes) for doc in documents)
    resource["passes_planned"] = run.n_consensus * run.total_document_count
    return dict(run=resource, results=results, terminal=run.status in RUN_TERMINAL)


@router.get("/console/runs/{run_id}")
async def run_page(run_id: str, request: Request, ctx: Ctx = Depends(console_ctx)):
    values = await overview(ctx, run_id)
    return render(request, "run.html", nav="runs", tab="overview", token=await live.position_token(ctx), **values)


@router.get("/console/runs/{run_id}/live")
async def run_live(run_id: str, request: Request, ctx: Ctx = Depends(console_ctx)):
    """The live part of the run page (status, counters, documents), for its poll."""
    same, token = await live.unchanged(request, ctx)
    if same:
        return same
    return render(request, "_run_live.html", token=token, **await overview(ctx, run_id))


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
