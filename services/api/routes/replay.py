"""Replay operations over HTTP: a run's verification (admin or the owning tenant) and the
read-model versions with the rebuild's progress (admin)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from projections import checkpoints, verify, versions
from projections.tables import runs

from ..auth import Caller, authenticate, require_admin
from ..errors import not_found

router = APIRouter(tags=["ledger"])


@router.get("/v1/ledger/runs/{run_id}/verify")
async def verify_run(run_id: str, request: Request, caller: Caller = Depends(authenticate)):
    """Refold the run from its own events and compare with its live rows: `ok`, the two
    state hashes, and each differing field."""
    async with request.app.state.runtime.engine.connect() as conn:
        owner = await conn.scalar(select(runs.c.org_id).where(runs.c.run_id == run_id))
        if owner != caller.org_id and not caller.admin:  # another tenant's run is not there for you
            raise not_found("run", run_id)
        try:
            return (await verify.verify_run(conn, request.app.state.runtime.log, run_id)).as_json()
        except verify.RunNotFound:
            raise not_found("run", run_id) from None


@router.get("/v1/ledger/read-models")
async def read_models(request: Request, _: Caller = Depends(require_admin)):
    """Every read-model version, the active one, the one this replica serves, and each
    version's checkpoints against the log's end (a rebuild's progress)."""
    runtime = request.app.state.runtime
    ends = await runtime.log.end_offsets()
    rows = await versions.list_versions(runtime.control)
    listed = []
    for row in rows:
        entry = {"version": row.version, "status": row.status, "created_at": row.created_at,
                 "activated_at": row.activated_at,
                 "location": versions.locate(runtime.settings.read_model_url, row.version).describe()}
        if row.status != versions.DROPPED:
            applied = await _checkpoints_of(runtime, row.version)
            entry["applied"] = sum(applied.values())
            entry["lag"] = sum(max(0, end - applied.get(p, 0)) for p, end in ends.items())
        listed.append(entry)
    active = next((r.version for r in rows if r.status == versions.ACTIVE), 1)
    return {"active_version": active, "serving_version": runtime.read_model.version, "versions": listed}


async def _checkpoints_of(runtime, version: int) -> dict[int, int]:
    if version == runtime.read_model.version:
        engine, own = runtime.engine, False
    else:
        engine, own = versions.open_engine(versions.locate(runtime.settings.read_model_url, version)), True
    try:
        async with engine.connect() as conn:
            return await checkpoints.load(conn, "main")
    except SQLAlchemyError:  # a version whose tables are not there yet (or any more)
        return {}
    finally:
        if own:
            await engine.dispose()
