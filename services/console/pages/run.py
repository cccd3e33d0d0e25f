"""One run: overview (lifecycle, timing, counters, frozen definition, documents),
its timeline with the as-of slider, and cancel."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse

from events.bounds import MAX_DOCUMENTS
from projections.domain.state import RUN_TERMINAL
from projections.store import live_views
from projections.store.history import HistoryFilter, head as history_head
from projections.store.pagination import MAX_OFFSET, PageRequest

from ...api import commands
from ...api.context import Ctx
from ...api.errors import ApiError, invalid, not_found
from ...api.resources import result_resource, run_resource
from ...api.routes.runs import load_run
from ...api.time_travel import run_then
from .. import history, live
from ..render import html_page
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
    return await html_page(request, "run.html", nav="runs", tab="overview", **values)


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
    return await html_page(request, "_run_live.html", run=run, results=document_rows(run, documents), span=span,
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
    return await html_page(request, "timeline.html", nav="runs", tab="timeline", run=run_resource(run), entries=found.entries,
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
    return await html_page(request, "_as_of.html", run=run_resource(run), then=resource, entry=entry, total=total)


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
