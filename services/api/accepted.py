"""202 Accepted: a command's events are on the log, the projection has not shown them yet.

A command whose events were appended must never answer a 5xx (clients, the retab SDK
among them, retry those, and a retried `runs.create` is a second run). When the
projection does not pass the command's positions within `wait_timeout`, the answer is
**202** with `x-runledger-visible: false`, the `x-runledger-position` token, and the
resource as the command made it: the read model's current state with the appended
events folded on top, by the same pure fold the projector runs (lifecycle only: no
consensus is computed here). Send the position token back to read it once visible.
"""
from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select

from projections.domain import fold
from projections.domain.state import BlockState, ExperimentState, RunState
from projections.store import serialize as ser, views
from projections.store.tables import blocks, experiments

from ..ledger import ProjectionLag
from .freshness import freshness
from .resources import experiment_resource, run_resource
from .routes.common import POSITION_HEADER


async def accepted(request: Request, lag: ProjectionLag) -> Response:
    engine = request.app.state.runtime.engine
    states: dict[str, Any] = {}
    async with engine.connect() as conn:
        for event in lag.appended:
            if event.aggregate_id not in states:
                states[event.aggregate_id] = await _current(conn, event)
            states[event.aggregate_id] = fold.apply(states[event.aggregate_id], event, fold.no_scores).state
        last = states.get(lag.appended[-1].aggregate_id) if lag.appended else None
        body = await _render(conn, last)
    headers = {POSITION_HEADER: ",".join(p.token() for p in lag.positions), "x-runledger-visible": "false"}
    if body is None:
        return Response(status_code=202, headers=headers)
    return JSONResponse(body, 202, headers=headers)


async def _current(conn, event) -> Any:
    kind = fold.AGGREGATE_KIND.get(event.type)
    if kind == "run":
        return await views.get_run_any(conn, event.aggregate_id)
    if kind == "experiment":
        row = (await conn.execute(select(experiments.c.state)
                                  .where(experiments.c.experiment_id == event.aggregate_id))).first()
        return ser.experiment_from_json(row.state) if row else None
    if kind == "block":
        row = (await conn.execute(select(blocks.c.state).where(blocks.c.block_key == event.aggregate_id))).first()
        return ser.block_from_json(row.state) if row else None
    return None


async def _render(conn, state: Any) -> dict | None:
    if isinstance(state, RunState):
        return run_resource(state)
    if isinstance(state, ExperimentState) and not state.deleted:
        block = await views.get_block(conn, state.org_id, state.workflow_id, state.block_id)
        last = await views.latest_run(conn, state.org_id, state.experiment_id)
        scored = await views.latest_run(conn, state.org_id, state.experiment_id, status="completed")
        return experiment_resource(state, block, last, scored, freshness(state, block, last))
    if isinstance(state, BlockState) and state.current is not None:
        version = state.current
        return {"workflow_id": state.workflow_id, "block_id": state.block_id, "type": version.block_type,
                "config": version.config, "version": version.version, "version_id": version.version_id,
                "fingerprint": version.fingerprint, "created": True}
    return None
