"""Per-request context: who is calling and the parts they reach."""
from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from events.envelope import Event
from events.log import Position
from projections.runtime import changes
from projections.store.database import reader

from ..bootstrap import Runtime
from ..ledger import Ledger
from .auth import authenticate
from .earned import Journal, journal_of
from .errors import not_found


@dataclass(frozen=True)
class Ctx:
    org_id: str
    runtime: Runtime
    ledger: Ledger
    role: str = "tenant"
    journal: Journal = field(default_factory=Journal)  # the ids this request's command makes, what it appended

    async def record(self, events: list[Event], before: dict | None = None) -> list[Position]:
        """Append `events`, note them (and `before`: the states of their aggregates as the
        command read them) in the journal, then wait until the projection has applied
        them. Whatever fails after the append, the answer is the 202 they earned
        (services/api/earned.py)."""
        positions = await self.ledger.append(events)
        self.journal.note(events, positions, before or {})
        await self.ledger.settle(positions)
        # This process's read cache forgets the events' organisations, so a read after the
        # command's answer (without its position token) never meets an answer from before it,
        # whichever process projected it (services/api/read_cache.py).
        changes.published(changes.Changed.everything_of(e.org_id for e in events))
        return positions

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
    return Ctx(caller.org_id, runtime, request.app.state.ledger, caller.role, journal_of(request.state))


async def require(ctx: Ctx, lookup, what: str, ident: str):
    """`lookup(conn, org_id, ident)` in the caller's organisation, or a 404."""
    async with ctx.connect() as conn:
        found = await lookup(conn, ctx.org_id, ident)
    if found is None:
        raise not_found(what, ident)
    return found
