"""Tamper evidence in the console: a run's page says how much of its history is proven
and offers the proof bundle; the operations page shows the latest signed heads. Both are
fragments the pages load after they are drawn (the heads are signed on demand)."""
from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from events.log import partition_for
from projections.notary import proofs

from ...api.context import Ctx
from ...api.errors import ApiError, invalid
from ...api.routes.notary import run_bundle_bytes
from ...api.routes.runs import load_run
from ...notary import runtime_signer
from ..render import html_page
from ..session import console_ctx

router = APIRouter()


@router.get("/console/runs/{run_id}/proven")
async def run_proven(run_id: str, request: Request, ctx: Ctx = Depends(console_ctx)):
    """"History proven: N records, head signed at T", and the bundle to download."""
    run = await load_run(ctx, run_id)
    key = await runtime_signer(ctx.runtime)
    async with ctx.connect() as conn:
        count = await proofs.run_record_count(conn, run_id)
        heads, _ = await proofs.signed_heads(conn, key, [partition_for(run_id, ctx.runtime.log.partitions)])
    head = heads[0].head if heads else None
    return await html_page(request, "_proven.html", run_id=run.run_id, records=count, head=head, key_id=key.key_id,
                  signed_at=_moment(head.time_ms) if head else None)


@router.get("/console/runs/{run_id}/proof.json")
async def run_proof_download(run_id: str, request: Request, ctx: Ctx = Depends(console_ctx)):
    """A page of the run's proof bundle (as the API's: at most about 1 MB; `after` as the
    previous page's `page.after`)."""
    after = request.query_params.get("after")
    if after is not None and not after.lstrip("-").isdigit():
        raise invalid("after must be an offset", field="after")
    body = await run_bundle_bytes(ctx, run_id, after=int(after) if after is not None else None)
    return Response(body, media_type="application/json", headers={
        "content-disposition": f"attachment; filename=\"run-{quote(run_id, safe='')}-proof.json\"",
        "cache-control": "no-store", "x-content-type-options": "nosniff"})


@router.get("/console/operations/heads")
async def signed_heads(request: Request, ctx: Ctx = Depends(console_ctx)):
    if not request.state.caller.admin:
        raise ApiError(403, "admin_required", "Operations are shown to admin keys only (runledger keys create --admin).")
    key = await runtime_signer(ctx.runtime)
    async with ctx.connect() as conn:
        heads, _ = await proofs.signed_heads(conn, key)
        published = await proofs.latest_published(conn)
    rows = [{"partition": h.head.partition, "size": h.head.size, "root": h.as_json()["root"],
             "signed_at": _moment(h.head.time_ms)} for h in heads]
    if published and published["time_ms"] is not None:
        published["time"] = _moment(published["time_ms"])
    return await html_page(request, "_signed_heads.html", heads=rows, key_id=key.key_id, published=published,
                  interval=ctx.runtime.settings.digest_interval)


def _moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, timezone.utc)
