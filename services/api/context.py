"""Per-request context: who is calling and the parts they reach."""
from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from projections.store.database import reader

from ..bootstrap import Runtime
from ..ledger import Ledger
from .auth import authenticate
from .errors import not_found


@dataclass(frozen=True)
class Ctx:
    org_id: str
    runtime: Runtime
    ledger: Ledger
    role: str = "tenant"

    def connect(self):
        """A connection for reads (no transaction around them on PostgreSQL: one round
        trip per SELECT); writes go through the log, never through this."""
        return reader(self.runtime.engine).connect()

    @property
    def producer(self) -> str:
        return f"api:{self.org_id}"


async def context(request: Request) -> Ctx:
    runtime: Runtime = request.app.state.runtime
    caller = await authenticate(request)
    return Ctx(caller.org_id, runtime, request.app.state.ledger, caller.role)


async def require(ctx: Ctx, lookup, what: str, ident: str):
    """`lookup(conn, org_id, ident)` in the caller's organisation, or a 404."""
    async with ctx.connect() as conn:
        found = await lookup(conn, ctx.org_id, ident)
    if found is None:
        raise not_found(what, ident)
    return found
