"""Error envelope {"detail": {"code", "message", "details"}} and the request id."""
from __future__ import annotations

import json
import logging
import math
import time
import uuid

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import StatementError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from events.log import LogUnavailable
from projections.store.pagination import InvalidCursor

from .. import logs
from . import storage_full as full_disk, unavailable

log = logging.getLogger("runledger.api")
CLIENT_GONE = 499  # what the access log and metrics count for a client that hung up mid-request


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or {}


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, f"{what}_not_found", f"{what.replace('_', ' ')} {ident!r} not found", {"id": ident})


def invalid(message: str, **details) -> ApiError:
    return ApiError(422, "invalid_request", message, details)


class ErrorResponse(JSONResponse):
    """Error bodies may quote input: lone surrogates are escaped and non-finite numbers
    written as strings, so rendering an error can never fail."""

    def render(self, content) -> bytes:
        return json.dumps(_finite(content), ensure_ascii=True, separators=(",", ":"), default=str).encode()


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def envelope(status: int, code: str, message: str, details: dict | None = None, headers=None) -> JSONResponse:
    return ErrorResponse({"detail": {"code": code, "message": message, "details": details or {}}}, status,
                         headers=headers)


_envelope = envelope
_UNSTORABLE_TEXT = {"22021", "22P05"}  # character_not_in_repertoire, untranslatable_character
HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type",
              422: "invalid_request", 503: "unavailable"}  # 503 storage_full too: services/api/storage_full.py


ERROR_SCHEMA = {
    "type": "object", "required": ["detail"], "title": "Error",
    "description": 'Every error answer: {"detail": {"code", "message", "details"}}',
    "properties": {"detail": {"type": "object", "required": ["code", "message", "details"], "properties": {
        "code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "object"}}}},
}
CLIENT_ERRORS = (400, 401, 403, 404, 409, 413, 422)
_ACCEPTED = {"description": "Accepted: the command's events are on the log, the read model does not show them "
                            "yet (`x-runledger-visible: false`); the body is the resource folded from them",
             "content": {"application/json": {"schema": {}}}}


def document_responses(app: FastAPI) -> None:
    """Every operation's OpenAPI answers name the error envelope (422 included, instead of
    FastAPI's list) and, for writes, the 202 of a command not yet visible."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
        error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        for operations in schema.get("paths", {}).values():
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                for status in (*CLIENT_ERRORS, 503):
                    responses[str(status)] = {"description": HTTP_CODES.get(status, "error"), **error}
                if method in ("post", "put", "patch", "delete"):
                    responses.setdefault("202", _ACCEPTED)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi


def storage_full(exc: BaseException, scope: Scope) -> JSONResponse | None:
    """503 `storage_full` with `Retry-After` when a full disk is behind `exc` (any store:
    the log's append, the control store, the read model), else None (services/api/storage_full.py)."""
    if not full_disk.refused_for_space(exc, scope):
        return None
    return _envelope(503, full_disk.CODE, full_disk.MESSAGE, {"retry_after_s": full_disk.RETRY_AFTER},
                     {"Retry-After": str(full_disk.RETRY_AFTER)})


class RequestId:
    """Pure ASGI: the request id (`x-request-id`, or a new one) on the request's log lines
    and on its answer, one access log line per request, and the 500 envelope for an
    exception nothing else answered. (A Starlette `BaseHTTPMiddleware` here cost a task
    and a memory stream per request.)"""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        rid = headers.get("x-request-id") or uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        logs.request_id.set(rid)  # JSON log lines carry it (services/logs.py)
        logs.use_traceparent(headers.get("traceparent"))
        started, status = time.perf_counter(), [None]
        stamp = (b"x-request-id", rid.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), stamp]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:  # the client hung up before its body ended: nothing to answer
            status[0] = CLIENT_GONE
        except Exception as exc:
            full = storage_full(exc, scope)
            if full is not None and status[0] is None:
                log.warning("storage full (request %s): %s", rid, str(exc).splitlines()[0] if str(exc) else exc)
                return await full(scope, receive, send_with_id)
            fault = unavailable.answer(exc)  # a dependency that failed or did not answer in time: 503
            if fault is None:
                log.exception("unhandled error (request %s)", rid)
            else:
                log.warning("request %s: %s", rid, fault.body.decode(errors="replace")[:500])
            if status[0] is not None:  # the answer had begun: nothing else can be sent
                raise
            answer = fault or _envelope(500, "internal_error", "internal error", {"request_id": rid})
            await answer(scope, receive, send_with_id)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            logs.log_request(scope["method"], route, status[0] or 500, time.perf_counter() - started,
                             scope.get("path_params") or {}, getattr(state.get("caller"), "org_id", None))


def install(app: FastAPI) -> None:
    app.add_middleware(RequestId)  # outermost: every answer carries the id, and is logged

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError):
        return _envelope(exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException):
        code = HTTP_CODES.get(exc.status_code, "http_error")
        return _envelope(exc.status_code, code, str(exc.detail), None, getattr(exc, "headers", None))

    @app.exception_handler(orjson.JSONEncodeError)
    async def unencodable(_request: Request, exc: orjson.JSONEncodeError):
        """Input the log cannot hold (lone surrogates, integers beyond 64 bits) reached an event."""
        return _envelope(422, "invalid_request", f"the request holds a value an event cannot carry: {exc}",
                         {"reason": str(exc)[:200]})

    @app.exception_handler(StatementError)
    async def unstorable(request: Request, exc: StatementError):
        """A value that parsed but no store can hold (9999-12-31T23:59:59-14:00 is past the
        last UTC datetime; NUL in PostgreSQL text) fails as it is bound or sent: a client
        mistake. Anything else is a bug."""
        if isinstance(exc.orig, OverflowError):
            return _envelope(422, "invalid_request", f"a value is out of range: {exc.orig}",
                             {"reason": str(exc.orig)})
        if getattr(exc.orig, "sqlstate", None) in _UNSTORABLE_TEXT:  # PostgreSQL: text holding NUL
            return _envelope(422, "invalid_request", "text values cannot contain NUL characters",
                             {"reason": "nul_character"})
        full = storage_full(exc, request.scope)
        if full is not None:
            return full
        fault = unavailable.answer(exc)  # a dropped connection, a restart, a statement past its timeout:
        if fault is not None:  # nothing was written through it (writes go through the log); retry
            return fault
        raise exc

    @app.exception_handler(LogUnavailable)
    async def log_unavailable(_request: Request, exc: LogUnavailable):
        return unavailable.answer(exc)

    @app.exception_handler(InvalidCursor)
    async def invalid_cursor(_request: Request, exc: InvalidCursor):
        return _envelope(422, "invalid_cursor", str(exc), {"cursor": str(exc.cursor)[:100]})

    @app.exception_handler(ValidationError)
    async def invalid_event(_request: Request, exc: ValidationError):
        """A command built an event the catalogue refuses (ids too long, control characters...)."""
        problems = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()[:10]]
        message = "; ".join(f"{'.'.join(map(str, p['loc']))}: {p['msg']}" for p in problems)
        return _envelope(422, "invalid_request", message, {"errors": problems})

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError):
        """FastAPI's own validation, in the envelope: the list it used to answer is `details.errors`."""
        errors = [{"type": e.get("type"), "loc": [_plain(part) for part in e.get("loc", ())], "msg": e.get("msg")}
                  for e in exc.errors()[:50]]
        message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5]) or "invalid request"
        return _envelope(422, "invalid_request", message, {"errors": errors})


def _plain(part) -> str | int:
    """A location part as JSON can carry it (a dict key may be any string, even a lone surrogate)."""
    if isinstance(part, int) and not isinstance(part, bool):
        return part
    return str(part).encode("utf-8", "replace").decode("utf-8")[:200]
