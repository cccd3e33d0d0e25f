"""202 Accepted: a command's events are on the log, its usual answer could not be given.

A command whose events were appended must never answer a 5xx (clients, the retab SDK
among them, retry those, and a retried `runs.create` is a second run). When the
projection does not pass the command's positions within `wait_timeout`, or anything
fails after the append (services/api/earned.py), the answer is **202** with
`x-runledger-visible: false`, the `x-runledger-position` token, and the resource as the
command made it: the state the command read before appending with its events folded on
top, by the same pure fold the projector runs (lifecycle only: no consensus is computed
here). A run's resource needs nothing else, so it is rendered even while the read model
cannot be read; an experiment's also shows its block, latest run and score, read from the
read model when it answers (left at their defaults when it does not). Send the position
token back to read it once visible.
"""
from __future__ import annotations

from typing import Any

import logging

from fastapi.responses import JSONResponse, Response
from sqlalchemy import select

from projections.domain import fold
from projections.domain.state import BlockState, ExperimentState, RunState
from projections.store import serialize as ser, views
from projections.store.tables import blocks, experiments

from .freshness import freshness
from .resources import experiment_resource, run_resource
from .routes.common import POSITION_HEADER

log = logging.getLogger("runledger.api")


async def accepted(runtime, journal) -> Response:
    """`journal`: services/api/earned.Journal, holding the command's appended events."""
    states: dict[str, Any] = dict(journal.before)
    for event in journal.appended:
        if event.aggregate_id not in states:
            states[event.aggregate_id] = await _read(runtime, _current, event)
        states[event.aggregate_id] = fold.apply(states[event.aggregate_id], event, fold.no_scores).state
    last = states.get(journal.appended[-1].aggregate_id) if journal.appended else None
    body = await _read(runtime, _render, last) if isinstance(last, ExperimentState) else _rendered(last)
    headers = {POSITION_HEADER: ",".join(p.token() for p in journal.positions), "x-runledger-visible": "false"}
    if body is None:
        return Response(status_code=202, headers=headers)
    return JSONResponse(body, 202, headers=headers)


async def _read(runtime, reading, subject):
    """`reading(conn, subject)`; on a failure of the read model, what it gives without it."""
    try:
        async with runtime.engine.connect() as conn:
            return await reading(conn, subject)
    except Exception:
        log.warning("the read model could not be read for a 202 answer", exc_info=True)
        return None if reading is _current else _rendered(subject)


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


async def _render(conn, state: ExperimentState) -> dict | None:
    if state.deleted:
        return None
    block = await views.get_block(conn, state.org_id, state.workflow_id, state.block_id)
    last = await views.latest_run(conn, state.org_id, state.experiment_id)
    scored = await views.latest_run(conn, state.org_id, state.experiment_id, status="completed")
    return experiment_resource(state, block, last, scored, freshness(state, block, last))


def _rendered(state: Any) -> dict | None:
    """What needs no read: a run, a block, an experiment without its block and runs."""
    if isinstance(state, RunState):
        return run_resource(state)
    if isinstance(state, ExperimentState) and not state.deleted:
        return experiment_resource(state, None, None, None, freshness(state, None, None))
    if isinstance(state, BlockState) and state.current is not None:
        version = state.current
        return {"workflow_id": state.workflow_id, "block_id": state.block_id, "type": version.block_type,
                "config": version.config, "version": version.version, "version_id": version.version_id,
                "fingerprint": version.fingerprint, "created": True}
    return None
