"""Ledger extensions: block definitions, event ingestion, projection status, health."""
from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select

from events.log import Position
from events.trace import parse_header
from projections.runtime import quarantine, retry
from projections.store.tables import runs

from ...telemetry import CONTENT_TYPE_LATEST
from .. import commands, duplicates, ingest_body
from ..auth import Caller, is_admin, require_admin
from ..bodies import DefineBlockBody
from ..context import Ctx, context
from ..errors import ApiError
from ..read_models import read_model_figures
from ..status import projection_status, public
from .common import mark_positions

router = APIRouter(tags=["ledger"])


@router.put("/v1/workflows/{workflow_id}/blocks/{block_id}", responses={201: {"description": "a new block version"}})
async def define_block(workflow_id: str, block_id: str, body: DefineBlockBody, response: Response,
                       ctx: Ctx = Depends(context)):
    resource, positions = await commands.define_block(ctx, workflow_id, block_id, body)
    mark_positions(response, positions)
    response.status_code = 201 if positions else 200
    return resource


@router.post("/v1/ledger/events", status_code=202, openapi_extra=ingest_body.OPENAPI,
             responses={200: {"description": "every event was a duplicate of an accepted one: nothing appended"}})
async def ingest(request: Request, ctx: Ctx = Depends(context),
                 traceparent: str | None = Header(None, description="W3C trace context for events without "
                                                                    "their own `trace`; ignored if malformed")):
    """Validate every event first; append all of them, or none. The body is an IngestBody,
    read once (services/api/ingest_body.py)."""
    items = ingest_body.ingest_items(await request.body(), request.headers.get("content-type"))
    trace = parse_header(traceparent)
    events = [commands.ingest_event(ctx, raw, i, trace) for i, raw in enumerate(items)]
    await _require_runs(ctx, {e.aggregate_id for e in events})
    known = await duplicates.known_positions(ctx, events)  # answered with where they are: not appended again
    fresh = [i for i in range(len(events)) if i not in known]
    appended = dict(zip(fresh, await ctx.ledger.append([events[i] for i in fresh]))) if fresh else {}
    where = [known.get(i, i) for i in range(len(events))]  # an accepted position, or the index of an appended one
    positions = [w if isinstance(w, Position) else appended[w] for w in where]
    tokens = [p.token() for p in positions]
    body = {"positions": tokens,
            "events": [{"event_id": str(e.event_id), "position": t, "duplicate": i in known}
                       for i, (e, t) in enumerate(zip(events, tokens))]}
    response = Response(orjson.dumps(body), 202 if fresh else 200, media_type="application/json")
    if known:
        response.headers["x-runledger-duplicate"] = "partial" if fresh else "true"
    mark_positions(response, positions)
    return response


async def _require_runs(ctx: Ctx, run_ids: set[str]) -> None:
    """404 unless every run exists for the caller's organisation. Runs seen before skip the
    query (a run never changes organisation and is never removed); a miss is not remembered."""
    known = ctx.ledger.known_runs
    unseen = {run_id for run_id in run_ids if not known.seen(ctx.org_id, run_id)}
    if not unseen:
        return
    async with ctx.connect() as conn:
        query = select(runs.c.run_id).where(runs.c.run_id.in_(unseen), runs.c.org_id == ctx.org_id)
        found = set((await conn.execute(query)).scalars())
    missing = sorted(unseen - found)
    if missing:
        raise ApiError(404, "run_not_found", f"unknown run(s): {', '.join(missing)}", {"run_ids": missing})
    for run_id in found:
        known.add(ctx.org_id, run_id)


@router.get("/v1/ledger/whoami")
async def whoami(ctx: Ctx = Depends(context)):
    """The organisation of the presented key (workers emit for it and work only on its runs)."""
    return {"org_id": ctx.org_id}


@router.get("/v1/ledger/projections")
async def projections(request: Request, _: Caller = Depends(require_admin)):
    """Whole-ledger figures (every partition's offsets): admin keys only."""
    return await projection_status(request.app.state.runtime)


@router.get("/healthz")
async def healthz(request: Request):
    """200 or 503 on every replica; the details (offsets, members, errors) for admin keys only."""
    status = await projection_status(request.app.state.runtime)
    body = status if await is_admin(request) else public(status)
    return JSONResponse(body, 200 if status["status"] == "ok" else 503)


@router.get("/metrics", responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                                         "description": "Prometheus text exposition"}})
async def metrics(request: Request):
    """Prometheus text (prometheus-client). No series carries a tenant-identifying label."""
    request.app.state.telemetry.read_models(await read_model_figures(request.app.state.runtime))
    text = request.app.state.telemetry.exposition(await projection_status(request.app.state.runtime))
    return Response(text, media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/ledger/quarantine")
async def quarantined(request: Request, _: Caller = Depends(require_admin)):
    """Runs set aside on a deterministic failure, with the error and how many events wait."""
    async with request.app.state.runtime.engine.connect() as conn:
        return {"data": [q.as_json() for q in await quarantine.list_quarantined(conn)]}


@router.post("/v1/ledger/quarantine/{aggregate_id}/retry")
async def retry_quarantined(aggregate_id: str, request: Request, _: Caller = Depends(require_admin)):
    """Fold the parked events again (after the fix shipped); lifts the quarantine if they apply."""
    outcome = await retry.retry_parked(request.app.state.runtime.engine, aggregate_id)
    if outcome.error == "not quarantined":
        raise ApiError(404, "not_quarantined", f"{aggregate_id!r} is not quarantined", {"aggregate_id": aggregate_id})
    return JSONResponse(outcome.as_json(), 200 if outcome.lifted else 409)
