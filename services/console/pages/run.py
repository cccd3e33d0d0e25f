"""One run: overview (lifecycle, timing, counters, frozen definition, documents),
its timeline with the as-of slider, and cancel."""
from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse

from projections.domain.state import RUN_TERMINAL
from projections.store import views
from projections.store.history import HistoryFilter, head as history_head
from projections.store.pagination import MAX_OFFSET, PageRequest

from ...api import commands
from ...api.context import Ctx
from ...api.errors import ApiError, invalid
from ...api.resources import result_resource, run_resource
from ...api.routes.runs import load_run
from ...api.time_travel import run_then
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
    """One page of the timeline (PAGE events in log order; `after` / `before`: offsets),
    filtered by type and outcome in SQL; `at` jumps to the page starting at a position."""
    run = await load_run(ctx, run_id)
    params = request.query_params
    kind, outcome = params.get("type") or None, params.get("outcome") or None
    at = (params.get("at") or "").strip()
    after, before = _offset(params.get("after"), "after"), _offset(params.get("before"), "before")
    if at:
        after, before = history.jump_offset(at, run_id, ctx.runtime.log.partitions) - 1, None
    only = HistoryFilter(kind, None if outcome not in ("accepted", "rejected") else outcome == "accepted")
    found = await history.timeline(ctx, run, PageRequest(history.PAGE, "asc", before, after), only)
    return render(request, "timeline.html", nav="runs", tab="timeline", run=run_resource(run), entries=found.entries,
                  total=found.total, types=history.TYPES, kind=kind, outcome=outcome, at=at,
                  filters={k: v for k, v in (("type", kind), ("outcome", outcome)) if v},
                  earlier=found.page.before, later=found.page.after)


@router.get("/console/runs/{run_id}/as-of")
async def as_of(run_id: str, request: Request, ctx: Ctx = Depends(console_ctx)):
    """The run as it was after its i-th event (the slider's value), from the nearest snapshot."""
    run = await load_run(ctx, run_id)
    async with ctx.connect() as conn:
        head = await history_head(conn, run_id)
    total = head.next_seq if head is not None and head.next_seq is not None else None
    if total is None:
        raise invalid("this run's history was indexed before time travel by snapshots: rebuild the read model")
    index = _index(request.query_params.get("i"), total)
    entry, then = await history.entry_at(ctx, run, index), await run_then(ctx, run, index)
    if entry is None or then.state is None:
        raise ApiError(404, "run_not_found", f"run {run_id!r} did not exist after event {index + 1}")
    resource = {**run_resource(then.state), "as_of": entry.position, "as_of_event_count": then.events}
    return render(request, "_as_of.html", run=run_resource(run), then=resource, entry=entry, total=total)


def _index(raw: str | None, count: int) -> int:
    try:
        index = int(raw if raw is not None else count - 1)
    except ValueError:
        index = -1
    if not 0 <= index < count:
        raise invalid(f"i must be an event index, 0..{count - 1}", field="i")
    return index


def _offset(raw: str | None, name: str) -> int | None:
    if not raw:
        return None
    try:
        offset = int(raw)
    except ValueError:
        offset = -2
    if not -1 <= offset <= MAX_OFFSET:
        raise invalid(f"{name} must be an offset, -1..{MAX_OFFSET}", field=name)
    return offset
