"""Replay operations over HTTP: a run's verification (admin or the owning tenant) and the
read-model versions with the rebuild's progress (admin)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select

from projections.runtime import verify
from projections.store.tables import runs

from ..auth import Caller, authenticate, require_admin
from ..errors import not_found
from ..read_models import read_model_figures

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
    return await read_model_figures(request.app.state.runtime)
