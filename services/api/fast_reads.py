"""A fast path for the two hottest reads, `GET /v1/workflows/experiments/runs/{id}` and
`GET /v1/workflows/experiments/runs` (the first page, unfiltered), in front of FastAPI.

Pure ASGI, inside the request id, telemetry and guard layers (so those still log, count
and guard these requests), outside FastAPI's routing, dependency solving and exception
layers, which were ~80 % of such a read (docs/benchmarks.md, "Reads"). It answers only
the common case, with the very bytes and headers the FastAPI route answers:

- no query string at all, no read-your-writes position header;
- a key the key cache (auth.KeyCache) says is valid and unrevoked;
- every run it answers has its stored resource (runs.resource).

Anything else, and any error while answering (a store that went away), falls through,
before a byte is sent, to the FastAPI route, which owns every 4xx/5xx, the 404, as_of,
position tokens, rendering legacy rows and the OpenAPI schema (the routes are unchanged).
"""
from __future__ import annotations

import logging

import orjson
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from projections import views
from projections.database import reader
from projections.pagination import PageRequest

from .. import logs
from .auth import Caller, KeyCache, valid_caller
from .routes import runs as run_routes
from .routes.common import POSITION_HEADER, envelope

log = logging.getLogger("runledger.api")

RUNS = "/v1/workflows/experiments/runs"
_RUN_PREFIX = RUNS + "/"
_FIRST_PAGE = PageRequest()  # page_request's defaults: limit 20, newest first
_NO_FILTERS = views.RunFilters()


class FastReads:
    """`api` is the FastAPI app (its runtime and key cache); the runs router's route objects
    label the answers in request logs and telemetry as routing would have.
    `served` counts the requests it answered itself (tests read it)."""

    def __init__(self, app: ASGIApp, api):
        self.app = app
        self.runtime = api.state.runtime
        self.keys: KeyCache = api.state.keys
        self.get_route = _route(run_routes.router.routes, RUNS + "/{run_id}")
        self.list_route = _route(run_routes.router.routes, RUNS)
        self.served = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await self._answer(scope) if _candidate(scope) else None
        if body is None:
            return await self.app(scope, receive, send)
        self.served += 1
        await Response(body, media_type="application/json")(scope, receive, send)

    async def _answer(self, scope: Scope) -> bytes | None:
        """The body of a 200 the route would answer, or None: let the route answer."""
        headers = Headers(scope=scope)
        if POSITION_HEADER in headers:
            return None
        try:
            caller = await valid_caller(self.keys, headers)
            if caller is None:
                return None
            path = scope["path"]
            if path == RUNS:
                return await self._listed(scope, caller)
            return await self._one(scope, caller, path[len(_RUN_PREFIX):])
        except Exception:  # noqa: BLE001 - the route answers it (a 503 for a store that went away)
            log.debug("fast read fell through", exc_info=True)
            return None

    async def _one(self, scope: Scope, caller: Caller, run_id: str) -> bytes | None:
        async with reader(self.runtime.engine).connect() as conn:
            row = (await conn.execute(views._RUN_RESOURCE, {"run_id": run_id, "org_id": caller.org_id})).first()
        if row is None or row.resource is None:  # a 404, or a row older than runs.resource
            return None
        _served(scope, caller, self.get_route, {"run_id": run_id})
        return row.resource.encode()

    async def _listed(self, scope: Scope, caller: Caller) -> bytes | None:
        async with reader(self.runtime.engine).connect() as conn:
            found = await views.list_run_resources(conn, caller.org_id, _NO_FILTERS, _FIRST_PAGE)
        if any(row.resource is None for row in found.rows):
            return None
        _served(scope, caller, self.list_route, {})
        return orjson.dumps(envelope(found, lambda row: orjson.Fragment(row.resource)))


def _candidate(scope: Scope) -> bool:
    """GET of one of the two paths, with no query string."""
    if scope["type"] != "http" or scope["method"] != "GET" or scope.get("query_string"):
        return False
    path = scope["path"]
    if path == RUNS:
        return True
    return path.startswith(_RUN_PREFIX) and len(path) > len(_RUN_PREFIX) and "/" not in path[len(_RUN_PREFIX):]


def _served(scope: Scope, caller: Caller, route: BaseRoute, path_params: dict) -> None:
    """What routing and `authenticate` leave on the scope, for the request log and telemetry."""
    scope.setdefault("state", {})["caller"] = caller
    logs.org_id.set(caller.org_id)
    scope["route"], scope["path_params"] = route, path_params


def _route(routes, path: str) -> BaseRoute:
    return next(r for r in routes if getattr(r, "path", None) == path and "GET" in getattr(r, "methods", ()))
