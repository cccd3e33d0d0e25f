"""The runs list: the SDK's filters and sorting, rows that keep themselves current."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timezone
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request

from projections.store import live_views, row_versions, views
from projections.store.pagination import PageRequest

from ...api.context import Ctx
from .. import live
from ..render import html_page
from ..session import console_ctx

router = APIRouter()
STATUSES = ("pending", "queued", "running", "completed", "error", "cancelled")
SORTS = {"created_at": "Created", "started_at": "Started", "completed_at": "Completed", "score": "Score"}
FILTER_NAMES = ("experiment_id", "workflow_id", "block_id", "status", "from_date", "to_date", "sort_by", "order")
PAGE_SIZE = 25


@dataclass(frozen=True)
class Query:
    values: dict[str, str]
    problems: list[str]
    filters: views.RunFilters
    page: PageRequest

    def link(self, **changes: str | None) -> str:
        merged = {**{k: v for k, v in self.values.items() if k in FILTER_NAMES}, **changes}
        return urlencode({k: v for k, v in merged.items() if v})


def parse_query(request: Request) -> Query:
    values = {k: v.strip() for k, v in request.query_params.items() if v.strip()}
    problems: list[str] = []
    status = _choice(values, "status", STATUSES, problems)
    sort_by = _choice(values, "sort_by", tuple(SORTS), problems) or "created_at"
    order = _choice(values, "order", ("desc", "asc"), problems) or "desc"
    from_date = _date(values, "from_date", time.min, problems)
    to_date = _date(values, "to_date", time.max, problems)
    filters = views.RunFilters(values.get("workflow_id"), values.get("experiment_id"), values.get("block_id"),
                               status, None, None, from_date, to_date, sort_by)
    page = PageRequest(PAGE_SIZE, order, values.get("before"), values.get("after"))
    return Query(values, problems, filters, page)


def _choice(values: dict, name: str, allowed: tuple[str, ...], problems: list[str]) -> str | None:
    value = values.get(name)
    if value is not None and value not in allowed:
        problems.append(f"{name} must be one of {', '.join(allowed)}; ignored {value!r}")
        values.pop(name)
        return None
    return value


def _date(values: dict, name: str, at: time, problems: list[str]) -> datetime | None:
    raw = values.get(name)
    if raw is None:
        return None
    try:
        day = datetime.fromisoformat(raw)
    except ValueError:
        problems.append(f"{name} must be a date (YYYY-MM-DD); ignored {raw!r}")
        values.pop(name)
        return None
    if len(raw) <= 10:
        day = datetime.combine(day.date(), at)
    return day if day.tzinfo else day.replace(tzinfo=timezone.utc)


def shown_run(run: live_views.RunShown) -> dict:
    """A row of the table: the API's run resource, its passes, and its live key and version."""
    resource = dict(run.resource, passes_done=run.passes, key=live.row_key(run.resource["id"]), version=run.version)
    resource["passes_planned"] = resource["n_consensus"] * resource["total_document_count"]
    return resource


async def _page(ctx: Ctx, request: Request) -> dict:
    """The whole page: the organisation's version first (a write landing meanwhile makes the
    next poll draw it), then its runs."""
    query = parse_query(request)
    async with ctx.connect() as conn:
        version = await row_versions.org_version(conn, ctx.org_id)
        found, shown = await live_views.run_page(conn, ctx.org_id, query.filters, query.page)
    runs = [shown_run(run) for run in shown]
    return dict(runs=runs, page=found, query=query, token=live.token(ctx, version),
                shown=live.shown_text([(run["key"], run["version"]) for run in runs]),
                statuses=STATUSES, sorts=SORTS)


@router.get("/console/runs")
async def runs_page(request: Request, ctx: Ctx = Depends(console_ctx)):
    return await html_page(request, "runs.html", nav="runs", **await _page(ctx, request))


@router.get("/console/runs/rows")
async def runs_rows(request: Request, ctx: Ctx = Depends(console_ctx)):
    """The page's poll: 204 while the organisation's version stands (one row read);
    otherwise the rows that changed on this page, and a new poller."""
    params = request.query_params
    since = live.since(ctx, params.get("since"))
    query = parse_query(request)
    async with ctx.connect() as conn:
        version = await row_versions.org_version(conn, ctx.org_id)
        if since == version:
            return live.unchanged()
        if since is None and params.get("since"):
            return live.reload()
        found = await live_views.page_versions(conn, ctx.org_id, query.filters, query.page)
        now = [(live.row_key(row.id_), row.version or 0) for row in found.rows]
        ids = {live.row_key(row.id_): row.id_ for row in found.rows}
        before = live.parse_shown(params.get("shown"))
        changes = live.row_changes(before, now)
        shown = await live_views.runs_shown(conn, ctx.org_id, [ids[key] for key in changes.keys])
    runs = {key: shown_run(shown[ids[key]]) for key in changes.keys if ids[key] in shown}
    return await html_page(request, "_runs_changes.html", query=query, page=found, changes=changes, runs=runs,
                  token=live.token(ctx, version), shown=live.shown_text(now), empty=not now, was_empty=not before,
                  oob=True)
