"""The runs list: the SDK's filters and sorting, rows that keep themselves current."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timezone
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request

from projections.store import views
from projections.store.pagination import PageRequest

from ...api.context import Ctx
from ...api.resources import run_resource
from .. import live
from ..render import render
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


async def runs_table(ctx: Ctx, query: Query):
    async with ctx.connect() as conn:
        found = await views.list_runs(conn, ctx.org_id, query.filters, query.page)
        runs = [run_resource(views.run_from_row(row)) for row in found.rows]
        passes = await views.pass_counts(conn, [run["id"] for run in runs])
    for run in runs:
        run["passes_done"] = passes[run["id"]]
        run["passes_planned"] = run["n_consensus"] * run["total_document_count"]
    return runs, found


async def _values(ctx: Ctx, request: Request, token: str) -> dict:
    query = parse_query(request)
    runs, found = await runs_table(ctx, query)
    return dict(runs=runs, page=found, query=query, token=token, statuses=STATUSES, sorts=SORTS)


@router.get("/console/runs")
async def runs_page(request: Request, ctx: Ctx = Depends(console_ctx)):
    token = await live.position_token(ctx)
    return render(request, "runs.html", nav="runs", **await _values(ctx, request, token))


@router.get("/console/runs/rows")
async def runs_rows(request: Request, ctx: Ctx = Depends(console_ctx)):
    """The table body alone, for the page's poll (204 while nothing moved)."""
    same, token = await live.unchanged(request, ctx)
    if same:
        return same
    return render(request, "_runs_body.html", **await _values(ctx, request, token))
