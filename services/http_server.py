"""uvicorn's server as runledger runs it: stopped by the process's shutdown grace, and a
request cut short by the stop answered 503, not 500.

uvicorn's own signal handlers raised a caught signal again once its server was down: with
the default handler back that ended the process on the spot (exit -15, nothing closed, the
fold pool's semaphores leaked), and a second server in the process (a projector's health
port) passed the signal on as if a second one had come. Here the grace handles SIGTERM and
SIGINT (services/shutdown.py) and sets `should_exit`.

uvicorn cancels the requests still running when its graceful-shutdown timeout passes, and
answers a cancelled request 500. `StoppingAnswers` answers it 503 with `Retry-After`: the
server is going, another replica (or this one, restarted) will take the retry, and a write
whose events reached the log counts once when retried with the same event ids or
`Idempotency-Key`.
"""
from __future__ import annotations

import asyncio
import contextlib
import uuid

import orjson
import uvicorn

from .shutdown import Grace

STOPPING = orjson.dumps({"detail": {"code": "unavailable", "message": "the server is stopping; retry",
                                    "details": {"reason": "shutting_down"}}})


class Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):
        yield


class StoppingAnswers:
    """ASGI: a request cancelled by the stop, before its answer began, is answered 503."""

    def __init__(self, app, grace: Grace):
        self.app = app
        self.grace = grace

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def noting(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, noting)
        except asyncio.CancelledError:
            if started or not self.grace.begun:
                raise
            rid = scope.get("state", {}).get("request_id") or uuid.uuid4().hex  # set by services/api/errors.RequestId
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1"),
                                    (b"x-request-id", rid.encode("latin-1")), (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": STOPPING})
            # Answered: the request ends here (uvicorn would log the cancellation as an error
            # and try to answer 500 on an answered connection).
