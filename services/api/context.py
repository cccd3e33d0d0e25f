"""Per-request context: who is calling and the parts they reach."""
from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from ..bootstrap import Runtime
from ..ledger import Ledger
from .auth import org_for


@dataclass(frozen=True)
class Ctx:
    org_id: str
    runtime: Runtime
    ledger: Ledger

    def connect(self):
        return self.runtime.engine.connect()

    @property
    def producer(self) -> str:
        return f"api:{self.org_id}"


async def context(request: Request) -> Ctx:
    runtime: Runtime = request.app.state.runtime
    org_id = await org_for(runtime.engine, request)
    return Ctx(org_id, runtime, request.app.state.ledger)
