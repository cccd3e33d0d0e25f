"""Tamper evidence over HTTP: the ledger's signed digest and a run's proof bundle
(projections/notary; what they prove: docs/security.md, "Tamper evidence")."""
from __future__ import annotations

import asyncio

import orjson
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from sqlalchemy import select

from projections.notary import proofs
from projections.store.pagination import MAX_OFFSET, PAGE_MAX_BYTES
from projections.store.tables import runs

from ...notary import runtime_signer
from ..context import Ctx, context
from ..errors import ApiError, invalid, not_found

router = APIRouter(tags=["ledger"])

SINCE = Query(None, description="An older digest's sizes, `partition:size[,partition:size...]`: the answer "
                                "also carries the consistency proof from each to the current tree")


@router.get("/v1/ledger/digest")
async def digest(since: str | None = SINCE, ctx: Ctx = Depends(context)):
    """The signed heads of every partition's Merkle tree (size, root, time, key id): what an
    auditor keeps. Sizes and roots say how many records each partition holds, nothing of them."""
    key = await runtime_signer(ctx.runtime)
    async with ctx.connect() as conn:
        try:
            return await proofs.digest(conn, key, parse_since(since))
        except proofs.SinceError as exc:
            raise invalid(str(exc), field="since") from None


AFTER = Query(None, ge=-1, le=MAX_OFFSET, description="the offset a page of the proof starts after (the last page's `page.after`)")


@router.get("/v1/ledger/runs/{run_id}/proof", responses={200: {"description": "a runledger-proof/1 bundle"}})
async def run_proof(run_id: str, since: str | None = SINCE, after: int | None = AFTER, ctx: Ctx = Depends(context)):
    """The run's records as the log holds them, each with its inclusion proof against its
    partition's signed head, and the public key: `runledger audit check` verifies it offline.
    The run's organisation only. A page at a time (at most PAGE_MAX_BYTES, about 1 MB, and
    proofs.PAGE_RECORDS records; `page.after` is where the next starts, null on the last),
    each page a bundle that checks alone; `runledger audit export` writes the whole run's.
    Cost: the page's records and O(page x log n) stored hashes."""
    return Response(await run_bundle_bytes(ctx, run_id, since, after), media_type="application/json")


async def run_bundle_bytes(ctx: Ctx, run_id: str, since: str | None = None, after: int | None = None) -> bytes:
    key = await runtime_signer(ctx.runtime)
    async with ctx.connect() as conn:
        owner = await conn.scalar(select(runs.c.org_id).where(runs.c.run_id == run_id))
        if owner != ctx.org_id:  # another organisation's run is not there for you, admin or not
            raise not_found("run", run_id)
        try:
            bundle = await proofs.run_bundle(conn, ctx.runtime.log, key, run_id, owner, parse_since(since), after,
                                             budget=PAGE_MAX_BYTES)
        except proofs.SinceError as exc:
            raise invalid(str(exc), field="since") from None
        except proofs.RunNotNotarised:
            raise ApiError(409, "not_notarised", f"run {run_id!r} has no records in a Merkle tree: its read model "
                           "was made before the notary (runledger rebuild makes the trees)", {"id": run_id}) from None
    return await asyncio.to_thread(orjson.dumps, bundle)


def parse_since(text: str | None) -> dict[int, int]:
    sizes: dict[int, int] = {}
    for part in filter(None, (text or "").split(",")):
        partition, _, size = part.partition(":")
        try:
            sizes[int(partition)] = int(size)
        except ValueError:
            raise invalid(f"since: {part!r} is not partition:size", field="since") from None
        if sizes[int(partition)] < 0 or int(partition) < 0:
            raise invalid(f"since: {part!r} has a negative number", field="since")
    return sizes


def since_of(digest: dict) -> str:
    """A digest's sizes as a `since` parameter."""
    return ",".join(f"{h['partition']}:{h['size']}" for h in digest.get("heads", ()))
