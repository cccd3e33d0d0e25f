"""Operations (admin keys only): projections with lag per partition, dead letters."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from projections.store import views

from ...api.context import Ctx
from ...api.errors import ApiError
from ...api.status import projection_status
from ..render import html_page
from ..session import console_ctx

router = APIRouter()
LETTERS_SHOWN = 200


@router.get("/console/operations")
async def operations_page(request: Request, ctx: Ctx = Depends(console_ctx)):
    if not request.state.caller.admin:
        raise ApiError(403, "admin_required", "Operations are shown to admin keys only (runledger keys create --admin).")
    from ...ops.audit import dead_letters  # operations tooling, loaded when an admin asks

    status = await projection_status(ctx.runtime)
    letters = await dead_letters(ctx.runtime.engine, limit=LETTERS_SHOWN)  # the first ones; all are counted
    async with ctx.connect() as conn:
        count = sum((await views.dead_letter_counts(conn)).values())
    return await html_page(request, "operations.html", nav="operations", ledger=status, letters=letters, letter_count=count)
