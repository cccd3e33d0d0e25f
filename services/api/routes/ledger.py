"""Ledger extensions: block definitions, event ingestion, projection status, health."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import select

from projections.tables import runs

from .. import commands
from ..auth import Caller, require_admin
from ..bodies import DefineBlockBody, IngestBody
from ..context import Ctx, context
from ..errors import ApiError
from ..status import projection_status, prometheus_text
from .common import mark_positions

router = APIRouter(tags=["ledger"])


@router.put("/v1/workflows/{workflow_id}/blocks/{block_id}", responses={201: {"description": "a new block version"}})
async def define_block(workflow_id: str, block_id: str, body: DefineBlockBody, response: Response,
                       ctx: Ctx = Depends(context)):
    resource, positions = await commands.define_block(ctx, workflow_id, block_id, body)
    mark_positions(response, positions)
    response.status_code = 201 if positions else 200
    return resource


@router.post("/v1/ledger/events", status_code=202)
async def ingest(body: IngestBody, response: Response, ctx: Ctx = Depends(context)):
    """Validate every event first; append all of them, or none."""
    events = [commands.ingest_event(ctx, raw, i) for i, raw in enumerate(body.events)]
    await _require_runs(ctx, {e.aggregate_id for e in events})
    positions = await ctx.ledger.append(events)
    mark_positions(response, positions)
    return {"positions": [p.token() for p in positions],
            "events": [{"event_id": str(e.event_id), "position": p.token()} for e, p in zip(events, positions)]}


async def _require_runs(ctx: Ctx, run_ids: set[str]) -> None:
    async with ctx.connect() as conn:
        query = select(runs.c.run_id).where(runs.c.run_id.in_(run_ids), runs.c.org_id == ctx.org_id)
        found = set((await conn.execute(query)).scalars())
    missing = sorted(run_ids - found)
    if missing:
        raise ApiError(404, "run_not_found", f"unknown run(s): {', '.join(missing)}", {"run_ids": missing})


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
    status = await projection_status(request.app.state.runtime)
    healthy = not any(p["stopped"] for proj in status["projections"] for p in proj["partitions"])
    return JSONResponse({"status": "ok" if healthy else "degraded", **status}, 200 if healthy else 503)


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request):
    return prometheus_text(await projection_status(request.app.state.runtime))


