"""`Idempotency-Key` on writes: a retried command answers its first answer, never runs twice.

For a POST, PUT, PATCH or DELETE under `/v1/` carrying `Idempotency-Key: <1-255
printable ASCII>`, per organisation:

- the first request claims the key (a unique insert, so concurrent duplicates are
  safe), runs, and its answer (status, body, position header) is stored, unless it
  was a 5xx (nothing to replay: the claim is released and a retry runs afresh);
- a repeat with the same method, path, query and body gets the stored answer, with
  `idempotent-replayed: true`;
- a repeat with anything different gets 422 `idempotency_key_reused`;
- a repeat while the first is still running gets 409 `idempotency_in_progress`
  (retry shortly). A claim left by a crashed server is taken over after `STALE`.

Records live in the control store (`idempotency_keys`) for `RETENTION`.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from projections.store.control import idempotency_keys as table

from .errors import envelope
from .guard import WRITE_METHODS

HEADER = "idempotency-key"
RETENTION = timedelta(hours=24)
STALE = timedelta(minutes=5)
_REPLAYED_HEADERS = ("content-type", "x-runledger-position", "x-runledger-visible")


class Idempotency:
    def __init__(self, app: ASGIApp, engine_of):
        self.app, self.engine_of = app, engine_of  # engine_of(): the control store, built after import

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS or not scope["path"].startswith("/v1/"):
            return await self.app(scope, receive, send)
        request = Request(scope)
        key = request.headers.get(HEADER)
        if key is None:
            return await self.app(scope, receive, send)
        caller = getattr(request.state, "caller", None)  # the guard authenticated every /v1/ write
        if not key or len(key) > 255 or not key.isascii() or not key.isprintable():
            return await envelope(422, "invalid_request", "Idempotency-Key: 1 to 255 printable ASCII characters",
                                  {"header": "Idempotency-Key"})(scope, receive, send)
        body = await _read_body(receive)
        fingerprint = _fingerprint(scope, body)
        engine = self.engine_of()
        claimed, row = await _claim(engine, caller.org_id, key, fingerprint)
        if not claimed:
            return await _answer_repeat(row, fingerprint, key)(scope, receive, send)
        await self._run_first(engine, caller.org_id, key, scope, body, send)

    async def _run_first(self, engine: AsyncEngine, org_id: str, key: str, scope: Scope, body: bytes,
                         send: Send) -> None:
        """The answer is held back until it is stored, so a repeat sent the moment the
        client has it finds it stored (never a spurious 409)."""
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        try:
            await self.app(scope, _replay(body), hold)
        except BaseException:
            await _release(engine, org_id, key)
            raise
        start = next((m for m in held if m["type"] == "http.response.start"), None)
        status = start["status"] if start else 500
        if status >= 500:
            await _release(engine, org_id, key)
        else:
            content = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
            await _store(engine, org_id, key, status, content, start.get("headers", []))
        for message in held:
            await send(message)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _fingerprint(scope: Scope, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (scope["method"].encode(), scope["path"].encode(), scope.get("query_string", b""), body):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc)


async def _claim(engine: AsyncEngine, org_id: str, key: str, fingerprint: str):
    """(True, None) when this request owns the key now; else (False, the existing row)."""
    mine = table.c.org_id == org_id, table.c.key == key
    for _ in range(3):
        try:
            async with engine.begin() as conn:
                await conn.execute(insert(table).values(org_id=org_id, key=key, request_hash=fingerprint,
                                                        created_at=_now()))
            return True, None
        except IntegrityError:
            pass
        async with engine.begin() as conn:
            row = (await conn.execute(select(table).where(*mine))).first()
            if row is None:
                continue  # released in between: claim again
            expired = _now() - row.created_at > RETENTION
            abandoned = row.status is None and _now() - row.created_at > STALE
            if not (expired or abandoned):
                return False, row
            await conn.execute(delete(table).where(*mine, table.c.created_at == row.created_at))
    return False, row


def _answer_repeat(row, fingerprint: str, key: str):
    if row.request_hash != fingerprint:
        return envelope(422, "idempotency_key_reused",
                        "this Idempotency-Key was used with a different request (method, path, query or body)",
                        {"idempotency_key": key})
    if row.status is None:
        return envelope(409, "idempotency_in_progress",
                        "a request with this Idempotency-Key is still being answered; retry shortly",
                        {"idempotency_key": key}, headers={"retry-after": "1"})
    return _StoredAnswer(row)


class _StoredAnswer:
    def __init__(self, row):
        self.row = row

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b"" if self.row.status in (204, 304) else self.row.body or b""
        headers = [(k.encode(), v.encode()) for k, v in json.loads(self.row.headers or "{}").items()]
        headers.append((b"idempotent-replayed", b"true"))
        if self.row.status not in (204, 304):
            headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": self.row.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _store(engine: AsyncEngine, org_id: str, key: str, status: int, body: bytes, headers) -> None:
    if status >= 500:
        return
    kept = {k.decode().lower(): v.decode() for k, v in headers if k.decode().lower() in _REPLAYED_HEADERS}
    async with engine.begin() as conn:
        await conn.execute(update(table).where(table.c.org_id == org_id, table.c.key == key)
                           .values(status=status, body=body, headers=json.dumps(kept)))


async def _release(engine: AsyncEngine, org_id: str, key: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(delete(table).where(table.c.org_id == org_id, table.c.key == key))
