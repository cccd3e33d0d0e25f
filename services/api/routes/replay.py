"""Replay operations over HTTP: a run's verification (admin or the owning tenant: a job in
a worker process, services/verifications.py) and the read-model versions with the
rebuild's progress (admin)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy import func, select

from projections.store.tables import event_index, runs

from ...verifications import Busy
from ..auth import Caller, authenticate, require_admin
from ..errors import envelope, not_found
from ..read_models import read_model_figures

router = APIRouter(tags=["ledger"])


INLINE_EVENTS = 2_000
"""`GET .../verify` answers the check itself for a run of at most this many events (it
waits for the job, up to `INLINE_WAIT` seconds); a longer run's answer is the job."""
INLINE_WAIT = 20.0


@router.post("/v1/ledger/runs/{run_id}/verifications", status_code=202)
async def start_verification(run_id: str, request: Request, caller: Caller = Depends(authenticate)):
    """Start verifying the run (admin or the owning tenant): a job, answered 202 with its
    status resource (`Location`), run by a worker process. One at a time per organisation:
    the next is a 429 `verification_running` with `Retry-After`."""
    await _owned(request, caller, run_id)
    job = await _start(request, caller, run_id)
    if isinstance(job, JSONResponse):
        return job
    return _accepted(job)


@router.get("/v1/ledger/verifications/{verification_id}")
async def get_verification(verification_id: str, request: Request, caller: Caller = Depends(authenticate)):
    """A verification job: `status` queued | running | completed | failed, `progress`
    (events done of total), and once completed `result`: `ok`, the two state hashes,
    `difference_count` and the first differences."""
    job = await request.app.state.runtime.verifications.get(verification_id)
    if job is None or (job.row["org_id"] != caller.org_id and not caller.admin):
        raise not_found("verification", verification_id)
    return job.as_json()


@router.get("/v1/ledger/runs/{run_id}/verify")
async def verify_run(run_id: str, request: Request, caller: Caller = Depends(authenticate)):
    """Refold the run from its own events and compare with its live rows: `ok`, the two
    state hashes, and each differing field. A job as `POST .../verifications` starts; for
    a run of at most `INLINE_EVENTS` events the answer is its result (200), for a longer
    one the job (202, `Location`: poll it)."""
    runtime = request.app.state.runtime
    await _owned(request, caller, run_id)
    async with runtime.engine.connect() as conn:
        small = await conn.scalar(select(func.count()).select_from(
            select(event_index.c.offset).where(event_index.c.aggregate_id == run_id)
            .limit(INLINE_EVENTS + 1).subquery())) <= INLINE_EVENTS
    job = await _start(request, caller, run_id)
    if isinstance(job, JSONResponse):
        return job
    if small:
        await runtime.verifications.wait(job.row["verification_id"], INLINE_WAIT)
        job = await runtime.verifications.get(job.row["verification_id"])
        if job.row["status"] == "completed":
            return job.as_json()["result"]
        if job.row["status"] == "failed" and (job.row["error"] or "").startswith("RunNotFound"):
            raise not_found("run", run_id)
    return _accepted(job)


async def _owned(request: Request, caller: Caller, run_id: str) -> None:
    async with request.app.state.runtime.engine.connect() as conn:
        owner = await conn.scalar(select(runs.c.org_id).where(runs.c.run_id == run_id))
    if owner != caller.org_id and not caller.admin:  # another tenant's run is not there for you
        raise not_found("run", run_id)


async def _start(request: Request, caller: Caller, run_id: str):
    try:
        return await request.app.state.runtime.verifications.start(caller.org_id, run_id)
    except Busy as busy:
        return envelope(429, "verification_running", f"{busy}; poll it, or retry after {busy.retry_after} s",
                        {"verification_id": busy.verification_id}, {"Retry-After": str(busy.retry_after)})


def _accepted(job) -> JSONResponse:
    location = f"/v1/ledger/verifications/{job.row['verification_id']}"
    return JSONResponse(job.as_json(), status_code=202, headers={"Location": location})


@router.get("/v1/ledger/read-models")
async def read_models(request: Request, _: Caller = Depends(require_admin)):
    """Every read-model version, the active one, the one this replica serves, and each
    version's checkpoints against the log's end (a rebuild's progress)."""
    return await read_model_figures(request.app.state.runtime)
