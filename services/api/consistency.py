"""Read-your-writes: a request may carry the position token of writes it depends on.

Write responses carry `x-runledger-position: p:o[,p:o...]`. Send it back, as that header
or as `?position=`, and the request is served only once the projection has passed
every position in it, waiting at most `wait_timeout` seconds (then 503 projection_lag).
"""
from __future__ import annotations

from fastapi import Header, Query, Request
from fastapi.exceptions import RequestValidationError

from events.log import Position

from .auth import authenticate
from .routes.common import POSITION_HEADER

_FORMAT = "'<partition>:<offset>[,<partition>:<offset>...]', as sent in the x-runledger-position header of a write"


async def read_your_writes(
    request: Request,
    header: str | None = Header(None, alias=POSITION_HEADER,
                                description="wait until the projection has passed these positions"),
    position: str | None = Query(None, description="the same as the x-runledger-position header"),
) -> None:
    positions: list[Position] = []
    partitions = request.app.state.runtime.log.partitions
    for loc, token in ((("header", POSITION_HEADER), header), (("query", "position"), position)):
        if token and token.strip():  # an empty token (a write that appended nothing) asks for nothing
            positions += parse_token(token, partitions, loc)
    if positions:
        await authenticate(request)  # no waiting on behalf of strangers
        await request.app.state.ledger.settle(positions)


def parse_token(token: str, partitions: int, loc: tuple[str, str]) -> list[Position]:
    positions = []
    for part in token.split(","):
        try:
            position = Position.parse(part.strip())
        except ValueError:
            raise _invalid(loc, token, f"invalid position token {token!r}: expected {_FORMAT}") from None
        if not 0 <= position.partition < partitions:
            raise _invalid(loc, token, f"position {part.strip()!r}: the log has partitions 0..{partitions - 1}")
        if position.offset < 0:
            raise _invalid(loc, token, f"position {part.strip()!r}: offsets start at 0")
        positions.append(position)
    return positions


def _invalid(loc: tuple[str, str], token: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": loc, "msg": message, "input": token}])
