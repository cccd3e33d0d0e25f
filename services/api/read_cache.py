"""The three hottest reads answered from this process's memory: `GET
/v1/workflows/experiments/runs/{id}`, the first page of `GET /v1/workflows/experiments/runs`
(no query string) and the metrics summary asked with `?run_id=` alone (the SDK's calls).

Pure ASGI, inside the request id, telemetry and guard layers (they still log, count and
guard every request), in front of FastAPI. A miss goes to the route, unchanged, and its
answer (status, headers, body: the route's own bytes) is kept if it is a 200; a hit sends
those bytes again. There is no second implementation of the reads: what is cached is what
the route rendered.

- **Authorisation is never skipped.** Every request, hit or miss, presents a key the key
  cache (auth.KeyCache) holds valid and unrevoked, or goes to the route (its 401); answers
  are kept per organisation, so another organisation's request never meets them.
- **Read-your-writes.** A request with a position token (`x-runledger-position`, or
  `?position=`, a query string) goes to the route, which waits for the projection.
- **Invalidation** per run, experiment and organisation (`changed`): every write of the read
  model announces what it changed (projections/runtime/changes.py): in this process after
  its commit, and on PostgreSQL to every process through LISTEN/NOTIFY
  (projections/runtime/change_listener.py). Answers are trusted only while every change is
  heard: on PostgreSQL while the listener is connected (everything is forgotten when it
  connects and when it is lost); on SQLite, which has no NOTIFY, while this process's own
  projector holds every partition (no other process projects). Otherwise requests go to the
  routes. Whatever no announcement tells of (a writer of an older release, a connection
  that died unnoticed, another process's repair of a SQLite read model) is bounded by the
  answers' age, `ttl` (RUNLEDGER_READ_CACHE_TTL). docs/architecture.md, "Cached reads".
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from starlette.datastructures import Headers, QueryParams
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from projections.runtime import changes
from projections.runtime.change_listener import ChangeListener

from .. import logs
from ..bootstrap import Runtime
from .auth import Caller, KeyCache, valid_caller
from .cached_answers import CachedAnswers, Tag
from .routes import metrics as metrics_routes, runs as run_routes
from .routes.common import POSITION_HEADER

log = logging.getLogger("runledger.api")

RUNS = "/v1/workflows/experiments/runs"
_RUN_PREFIX = RUNS + "/"
METRICS = "/v1/workflows/experiments/metrics"


class ReadCache:
    """The answers, and whether they can be trusted now (one per application)."""

    def __init__(self, runtime: Runtime, max_bytes: int, ttl: float):
        self.runtime = runtime
        self.answers = CachedAnswers(max_bytes, ttl)
        self.enabled = max_bytes > 0
        self.listener: ChangeListener | None = None
        self.started = False  # by the server's start-up (create_app's lifespan): until then, every read is the route's
        self._engine = None
        self._held: tuple | None = None
        changes.subscribe(self)

    async def start(self) -> None:
        """Begin: listen for changes (PostgreSQL). A server calls this at start-up."""
        self.started = True
        if self.enabled:
            self.trusted()

    async def close(self) -> None:
        self.started = False
        if self.listener is not None:
            await self.listener.close()
            self.listener = None

    def changed(self, changed: changes.Changed | None) -> None:
        if changed is None:
            self.answers.clear()
            return
        tags: list[Tag] = [("list", org) for org in changed.orgs]
        tags += [("org", org) for org in changed.wide]
        for run_id, _org, experiment_id in changed.runs:
            tags += [("run", run_id), ("exp", experiment_id)]
        self.answers.forget(tags)

    def trusted(self) -> bool:
        """Is every change of the read model being heard (see the module's docstring)?"""
        if not self.started:
            return False
        engine = self.runtime.engine
        if engine is not self._engine:  # the first request, or a read-model switch
            self._engine = engine
            self.answers.clear()
            self._listen(engine)
        if self.listener is not None:
            return self.listener.listening
        projector = self.runtime.projector
        if projector is None or len(projector.partitions) < self.runtime.log.partitions:
            return False
        held = tuple(status.seek for status in projector.partitions.values())  # a new assignment: a new seek
        if held != self._held:
            self._held = held
            self.answers.clear()
        return True

    def _listen(self, engine) -> None:
        if self.listener is not None:
            old, self.listener = self.listener, None
            asyncio.ensure_future(old.close())
        if engine.dialect.name == "postgresql":
            self.listener = ChangeListener(engine, self)
            self.listener.start()


class CachedReads:
    """`served` counts the answers sent from the cache (tests read it)."""

    def __init__(self, app: ASGIApp, api, cache: ReadCache):
        self.app, self.cache = app, cache
        self.keys: KeyCache = api.state.keys
        self.routes = {"run": _route(run_routes.router.routes, RUNS + "/{run_id}"),
                       "list": _route(run_routes.router.routes, RUNS),
                       "summary": _route(metrics_routes.router.routes, METRICS)}
        self.served = 0
        self._asking: dict[tuple, asyncio.Future] = {}  # misses in flight, by key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        asked = _candidate(scope) if self.cache.enabled else None
        caller = await self._caller(scope) if asked is not None else None
        if caller is None or not self.cache.trusted():
            return await self.app(scope, receive, send)
        kind, ident = asked
        key = (kind, caller.org_id, ident)
        answer = self.cache.answers.get(key)
        if answer is None and key in self._asking:  # the same miss in flight: its answer, once (if kept)
            answer = await asyncio.shield(self._asking[key])
        if answer is not None:
            self.served += 1
            _label(scope, caller, self.routes[kind], {"run_id": ident} if kind == "run" else {})
            await send({"type": "http.response.start", "status": answer.status, "headers": list(answer.headers)})
            await send({"type": "http.response.body", "body": answer.body})
            return
        await self._miss(scope, receive, send, key, caller.org_id)

    async def _miss(self, scope: Scope, receive: Receive, send: Send, key: tuple, org_id: str) -> None:
        """The route answers; a 200 is kept unless a change it may predate was heard meanwhile
        (the ticket). Requests for the same answer meanwhile wait for it rather than asking
        the route too (when the TTL ends under load, one request reads, not every one)."""
        answers, (kind, _, ident) = self.cache.answers, key
        asking = self._asking.setdefault(key, asyncio.get_running_loop().create_future())
        kept = None
        try:
            ticket = answers.ticket()
            captured = _Captured(send, answers.max_bytes // 8)
            await self.app(scope, receive, captured.send)
            if captured.status == 200 and captured.complete:
                body = b"".join(captured.body)
                if answers.put(key, ticket, 200, captured.headers, body, _tags(kind, org_id, ident, body)):
                    kept = answers.get(key)
        finally:
            if self._asking.get(key) is asking:
                del self._asking[key]
            if not asking.done():
                asking.set_result(kept)

    async def _caller(self, scope: Scope) -> Caller | None:
        """The caller of a request the cache may answer; None sends it to the route (a
        position token, a key `authenticate` would refuse, a key store that went away)."""
        headers = Headers(scope=scope)
        if POSITION_HEADER in headers:
            return None
        try:
            return await valid_caller(self.keys, headers)
        except Exception:  # noqa: BLE001 - the route answers it (a 503 for a store that went away)
            log.debug("read cache: key check failed; the route answers", exc_info=True)
            return None


class _Captured:
    """Passes the route's answer on as it comes, keeping a copy of it (up to `limit` bytes)."""

    def __init__(self, send: Send, limit: int):
        self._send, self.limit = send, limit
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.size = 0
        self.complete = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status, self.headers = message["status"], list(message.get("headers", ()))
        elif message["type"] == "http.response.body":
            chunk = message.get("body", b"")
            self.size += len(chunk)
            if self.size <= self.limit:
                self.body.append(chunk)
            self.complete = not message.get("more_body", False) and self.size <= self.limit
        await self._send(message)


def _tags(kind: str, org_id: str, ident: str, body: bytes) -> list[Tag]:
    """What an answer depends on: its run, its organisation's list, or for a summary the
    run's experiment (the prior run, the experiment's and block's definitions): named in
    every answer the summary route gives; the organisation's list when it cannot be read."""
    if kind == "list":
        return [("list", org_id), ("org", org_id)]
    tags = [("run", ident), ("org", org_id)]
    if kind == "summary":
        experiment = _experiment_of(body)
        tags.append(("exp", experiment) if experiment else ("list", org_id))
    return tags


def _experiment_of(body: bytes) -> str | None:
    try:
        found = orjson.loads(body).get("experiment_id")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return found if isinstance(found, str) else None


def _candidate(scope: Scope) -> tuple[str, str] | None:
    """(kind, run id or "") of a GET the cache may answer: one of the two run paths with no
    query string, or the metrics with `run_id` alone."""
    if scope["type"] != "http" or scope["method"] != "GET":
        return None
    path = scope["path"]
    if path == METRICS:
        run_id = _only_run_id(scope)
        return ("summary", run_id) if run_id else None
    if scope.get("query_string"):
        return None
    if path == RUNS:
        return "list", ""
    if path.startswith(_RUN_PREFIX) and len(path) > len(_RUN_PREFIX) and "/" not in path[len(_RUN_PREFIX):]:
        return "run", path[len(_RUN_PREFIX):]
    return None


def _only_run_id(scope: Scope) -> str | None:
    """The run id of a query string that is `run_id=<id>` and nothing else (parsed as the
    route parses it)."""
    query = QueryParams(scope.get("query_string", b""))
    given = query.getlist("run_id")
    if len(query) != 1 or len(given) != 1:
        return None
    return given[0] or None


def _label(scope: Scope, caller: Caller, route: BaseRoute, path_params: dict[str, Any]) -> None:
    """What routing and `authenticate` leave on the scope, for the request log and telemetry."""
    scope.setdefault("state", {})["caller"] = caller
    logs.org_id.set(caller.org_id)
    scope["route"], scope["path_params"] = route, path_params


def _route(routes, path: str) -> BaseRoute:
    return next(r for r in routes if getattr(r, "path", None) == path and "GET" in getattr(r, "methods", ()))

