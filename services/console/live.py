"""Live updates by polling with a position token.

A polling fragment carries `since=<token>`, the projection's checkpoints when it was
drawn. If nothing has been applied since, the answer is 204 and htmx keeps the page
as it is; otherwise the fragment is drawn again with the new token. One cheap query a
poll while nothing moves."""
from __future__ import annotations

from fastapi import Request, Response

from projections.store import views

from ..api.context import Ctx

POLL = "every 1s"


async def position_token(ctx: Ctx) -> str:
    async with ctx.connect() as conn:
        checkpoints = await views.projection_checkpoints(conn)
    main = checkpoints.get("main", {})
    return ",".join(f"{p}:{o}" for p, o in sorted(main.items())) or "0"


async def unchanged(request: Request, ctx: Ctx) -> tuple[Response | None, str]:
    """(204 response, token) when the caller's `since` is still current, else (None, token)."""
    token = await position_token(ctx)
    if request.query_params.get("since") == token:
        return Response(status_code=204), token
    return None, token
