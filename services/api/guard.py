"""Before any request body is read: the key is checked, then the body is measured.

FastAPI reads (and parses) a body before its dependencies run, so a stranger's 150 MB
POST would be read and parsed before the 401. This ASGI middleware runs first:

- a write under `/v1/` (POST, PUT, PATCH, DELETE) without a valid key answers 401
  at once, reading none of the body;
- a body whose Content-Length exceeds `max_body_bytes` answers 413 at once;
- a body without Content-Length (chunked) is counted as it streams in, and 413 is
  answered as soon as it passes the limit; the rest is never read;
- a NUL character in the path or the query is a 422 (PostgreSQL text cannot hold it).
"""
from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import authenticate
from .errors import ApiError, envelope

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BodyTooLarge(HTTPException):
    """An HTTPException, so FastAPI's body reader lets it through to the 413 handler."""

    def __init__(self, limit: int):
        super().__init__(413, f"request body larger than {limit} bytes (RUNLEDGER_MAX_BODY_BYTES)")


class RequestGuard:
    def __init__(self, app: ASGIApp, max_body_bytes: int):
        self.app, self.limit = app, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            return await envelope(422, "invalid_request", "paths and query parameters cannot contain NUL characters",
                                  {"reason": "nul_character"})(scope, receive, send)
        if scope["method"] in WRITE_METHODS and scope["path"].startswith("/v1/"):
            try:
                await authenticate(Request(scope))
            except ApiError as exc:
                return await envelope(exc.status, exc.code, exc.message, exc.details)(scope, receive, send)
        if _declared(scope) > self.limit:
            return await self._too_large(scope, receive, send)
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, _counting(receive, self.limit), tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = BodyTooLarge(self.limit)
        response = envelope(413, "payload_too_large", error.detail, {"limit_bytes": self.limit},
                            headers={"connection": "close"})
        await response(scope, receive, send)


def _declared(scope: Scope) -> int:
    value = Headers(scope=scope).get("content-length", "")
    return int(value) if value.isdigit() else 0


def _counting(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
        return message

    return counted
