"""Error envelope {"detail": {"code", "message", "details"}} and the request id."""
from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("runledger.api")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or {}


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, f"{what}_not_found", f"{what.replace('_', ' ')} {ident!r} not found", {"id": ident})


def invalid(message: str, **details) -> ApiError:
    return ApiError(422, "invalid_request", message, details)


def _envelope(status: int, code: str, message: str, details: dict | None) -> JSONResponse:
    return JSONResponse({"detail": {"code": code, "message": message, "details": details or {}}}, status)


def install(app: FastAPI) -> None:
    @app.middleware("http")
    async def request_id(request: Request, call_next):
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex
        request.state.request_id = rid
        try:
            response = await call_next(request)
        except Exception:
            log.exception("unhandled error (request %s)", rid)
            response = _envelope(500, "internal_error", "internal error", {"request_id": rid})
        response.headers["x-request-id"] = rid
        return response

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError):
        return _envelope(exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException):
        code = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _envelope(exc.status_code, code, str(exc.detail), None)

    @app.exception_handler(ValidationError)
    async def invalid_event(_request: Request, exc: ValidationError):
        """A command built an event the catalogue refuses (ids too long, control characters...)."""
        problems = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()[:10]]
        message = "; ".join(f"{'.'.join(map(str, p['loc']))}: {p['msg']}" for p in problems)
        return _envelope(422, "invalid_request", message, {"errors": problems})

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError):
        errors = [{k: v for k, v in e.items() if k in ("type", "loc", "msg")} for e in exc.errors()]
        return JSONResponse({"detail": errors}, 422)
