from __future__ import annotations

from datetime import datetime
from typing import Literal

import orjson
from fastapi import APIRouter, Body, Depends, Query, Response

from events.envelope import trace_id
from events.log import Position, partition_for
from projections.domain.state import RunState
from projections.runtime.event_bodies import read_from_log
from projections.store import history, views
from projections.store.pagination import MAX_OFFSET, PageRequest

from .. import commands
from ..bodies import CreateRunBody, TriggerType
from ..context import Ctx, context, require
from ..errors import ApiError, not_found
from ..resources import lifecycle, run_resource
from ..time_travel import run_as_of
from .common import fit_page, list_response, mark_positions, page_request

router = APIRouter(prefix="/v1/workflows/experiments/runs", tags=["runs"])
Status = Literal["pending", "queued", "running", "completed", "error", "cancelled"]


async def load_run(ctx: Ctx, run_id: str) -> RunState:
    return await require(ctx, views.get_run, "run", run_id)


@router.post("", status_code=201)
async def create_run(body: CreateRunBody, response: Response, ctx: Ctx = Depends(context),
                     trigger_type: TriggerType = Query("api", description="what started the run (the body's wins)")):
    """The run starts `pending`; the SDK sends extra keyword arguments as query
    parameters, so `runs.create(..., trigger_type="schedule")` lands here."""
    run_id, positions = await commands.create_run(ctx, body, trigger_type)
    mark_positions(response, positions)
    return run_resource(await load_run(ctx, run_id))


@router.post("/plan")
async def plan_run(body: CreateRunBody, ctx: Ctx = Depends(context)):
    """Preview a run: what it would freeze, and the `plan_token` that pins it."""
    return await commands.plan_run(ctx, body)


@router.get("")
async def list_runs(
    workflow_id: str | None = None, experiment_id: str | None = None, block_id: str | None = None,
    status: Status | None = None, exclude_status: Status | None = None, trigger_type: str | None = None,
    from_date: datetime | None = None, to_date: datetime | None = None,
    sort_by: Literal["created_at", "started_at", "completed_at", "score"] = "created_at",
    page: PageRequest = Depends(page_request), ctx: Ctx = Depends(context),
):
    filters = views.RunFilters(workflow_id, experiment_id, block_id, status, exclude_status, trigger_type,
                               from_date, to_date, sort_by)
    async with ctx.connect() as conn:
        found = await views.list_run_resources(conn, ctx.org_id, filters, page)
    return list_response(*await fit_page(found, page, lambda row: views.resource_text(row).encode()))


@router.get("/{run_id}")
async def get_run(run_id: str, as_of: str | None = Query(None, description="a position 'p:o' or an ISO time"),
                  ctx: Ctx = Depends(context)):
    if as_of is None:  # the resource the projector rendered, as it is stored
        async with ctx.connect() as conn:
            text = await views.get_run_resource(conn, ctx.org_id, run_id)
        if text is None:
            raise not_found("run", run_id)
        return Response(text, media_type="application/json")
    return await run_as_of(ctx, await load_run(ctx, run_id), as_of)


@router.post("/{run_id}/cancel")
async def cancel_run(run_id: str, response: Response, reason: str | None = Body(None, embed=True),
                     ctx: Ctx = Depends(context)):
    mark_positions(response, await commands.cancel_run(ctx, run_id, reason))
    run = await load_run(ctx, run_id)
    return {"id": run.run_id, "lifecycle": lifecycle(run.status, run.error, run.cancel_reason)}


HISTORY_PAGE_BYTES = 1_000_000
"""A history page's JSON stays within this many bytes (or is one event, if that one alone is
larger: an event may carry up to 960 KiB): fewer items than `limit` then, and `after`
continues from the last one shown."""


@router.get("/{run_id}/events")
async def run_events(run_id: str, page: PageRequest = Depends(page_request),
                     event_type: str | None = Query(None, alias="type", description="only events of this type"),
                     status: Literal["accepted", "rejected"] | None = Query(None, description="only these outcomes"),
                     ctx: Ctx = Depends(context)):
    """One page of the run's history: read from the event index by offset (filters in SQL),
    its rejected events' bodies from the log in one range read, at most HISTORY_PAGE_BYTES."""
    page = _offset_cursors(page)
    partition = partition_for(run_id, ctx.runtime.log.partitions)
    only = history.HistoryFilter(event_type, None if status is None else status == "accepted")
    async with ctx.connect() as conn:
        if await views.get_run_score(conn, ctx.org_id, run_id) is None:  # visible to the caller: no state decoded
            raise not_found("run", run_id)
        found = await history.history_page(conn, run_id, partition, page, only, HISTORY_PAGE_BYTES)
        stored = await history.bodies(conn, partition, found.rows)
    logged = await read_from_log(ctx.runtime.log, partition, [row for row in found.rows if not row.accepted])
    fitted, items = await fit_page(
        found, page, lambda row: orjson.dumps(_history_item(row, stored.get(row.offset) or logged[row.offset])),
        HISTORY_PAGE_BYTES, by_offset=True)  # as rendered: the store fitted it by the events' stored sizes
    return list_response(fitted, items)


def _offset_cursors(page: PageRequest) -> PageRequest:
    return PageRequest(page.limit, page.order, _offset(page.before, "before"), _offset(page.after, "after"))


def _offset(cursor: str | None, name: str) -> int | None:
    if cursor is None:
        return None
    try:
        offset = int(cursor)
    except ValueError:
        offset = -1
    if not 0 <= offset <= MAX_OFFSET:
        raise ApiError(422, "invalid_cursor", f"{name}: history cursors are log offsets, 0..{MAX_OFFSET}",
                       {"cursor": cursor[:100]})
    return offset


def _history_item(row, body: dict) -> dict:
    return {
        "position": Position(row.partition, row.offset).token(), "partition": row.partition,
        "offset": row.offset, "event_id": body["event_id"], "type": body["type"],
        "schema_version": body["schema_version"], "occurred_at": body["occurred_at"],
        "producer": body["producer"], "status": "accepted" if row.accepted else "rejected",
        "accepted": row.accepted, "reason": row.reason, "payload": body["payload"],
        "trace_id": trace_id(body.get("trace")), "traceparent": body.get("trace"),
        "deliveries": row.deliveries or 1,  # an accepted event that reached the log again is counted here
        "last_position": Position(row.partition, row.last_offset).token() if row.last_offset is not None else None,
    }
