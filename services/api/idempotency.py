"""`Idempotency-Key` on writes: a retried command answers its first answer, never runs twice.

For a POST, PUT, PATCH or DELETE under `/v1/` carrying `Idempotency-Key: <1-255
printable ASCII>`, per organisation and API key:

- only a request whose body arrived whole counts: a client that hung up half-way has
  sent nothing (no claim, no answer kept; Starlette's `ClientDisconnect` is raised);
- the first request claims the key (a unique insert, so concurrent duplicates are
  safe) with a random *seed*, from which its command derives every id it makes (the
  run id, the event ids: services/api/earned.py), then runs; its answer (status, body,
  position header) is stored, unless it was a 5xx;
- a 5xx ends the attempt without an answer (nothing had reached the log, or the outcome
  is unknown: a Kafka send that timed out may still land). The claim is kept, seed and
  all, and let go: a retry of the same request takes it over at once and runs again
  with the same ids, so it re-appends the very events the first may have appended, and
  the fold refuses them as duplicates (a second `RunCreated` of a run, a second cancel);
- once a command's events are on the log its answer is earned whatever fails after
  (services/api/earned.py answers 202 with the resource folded from them), so that
  answer is what is stored;
- a repeat with the same method, path, query and body gets the stored answer, with
  `idempotent-replayed: true`;
- a repeat with anything different gets 422 `idempotency_key_reused`;
- a repeat while the first is still running gets 409 `idempotency_in_progress`
  (retry shortly). A claim whose server died mid-request is taken over after `LEASE`.

Answers are replayed only to the key that earned them: another key of the same
organisation (an admin's stored answer, a tenant's) has its own records, so its request
is routed, and answered by the route's own authorisation.

Records live in the control store (`idempotency_keys`) for `RETENTION`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from projections.store.control import idempotency_keys as table

from .auth import Caller
from .errors import envelope
from .guard import WRITE_METHODS

log = logging.getLogger("runledger.api")

HEADER = "idempotency-key"
RETENTION = timedelta(hours=24)
LEASE = timedelta(minutes=5)
SEED = "idempotency_seed"  # where the claim's seed waits in the request's state, for services/api/earned.py
_REPLAYED_HEADERS = ("content-type", "x-runledger-position", "x-runledger-visible")


@dataclass(frozen=True)
class _Record:
    """Whose record: the organisation, the key that sent it, its Idempotency-Key."""
    org_id: str
    key_id: str
    key: str

    def where(self):
        return table.c.org_id == self.org_id, table.c.key_id == self.key_id, table.c.key == self.key


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
        caller: Caller = request.state.caller  # the guard authenticated every /v1/ write
        if not key or len(key) > 255 or not key.isascii() or not key.isprintable():
            return await envelope(422, "invalid_request", "Idempotency-Key: 1 to 255 printable ASCII characters",
                                  {"header": "Idempotency-Key"})(scope, receive, send)
        body = await _read_body(receive)
        fingerprint = _fingerprint(scope, body)
        engine, record = self.engine_of(), _Record(caller.org_id, caller.key_id, key)
        seed, row = await _claim(engine, record, fingerprint)
        if seed is None:
            return await _answer_repeat(row, fingerprint, key)(scope, receive, send)
        scope.setdefault("state", {})[SEED] = seed
        await self._run_first(engine, record, scope, body, send)

    async def _run_first(self, engine: AsyncEngine, record: _Record, scope: Scope, body: bytes, send: Send) -> None:
        """The answer is held back until it is stored, so a repeat sent the moment the
        client has it finds it stored (never a spurious 409)."""
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        try:
            await self.app(scope, _replay(body), hold)
        except BaseException:
            await _let_go(engine, record)
            raise
        start = next((m for m in held if m["type"] == "http.response.start"), None)
        status = start["status"] if start else 500
        if status >= 500:
            await _let_go(engine, record)
        else:
            content = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
            try:
                await _store(engine, record, status, content, start.get("headers", []))
            except Exception:  # the answer stands; a retry runs again with the same ids (module docstring)
                log.exception("could not keep the answer of Idempotency-Key %r; a retry will run again", record.key)
                await _let_go(engine, record)
        for message in held:
            await send(message)


async def _read_body(receive: Receive) -> bytes:
    """The whole body, or ClientDisconnect: a body cut short is never a request."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
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


async def _claim(engine: AsyncEngine, record: _Record, fingerprint: str):
    """(seed, None) when this request owns the key now; else (None, the existing row).
    An attempt that ended without an answer (a 5xx, a lease run out) is taken over with
    its seed, by the same request only."""
    for _ in range(3):
        now = _now()
        try:
            async with engine.begin() as conn:
                seed = secrets.token_hex(16)
                await conn.execute(insert(table).values(
                    org_id=record.org_id, key_id=record.key_id, key=record.key, request_hash=fingerprint, seed=seed,
                    created_at=now, lease_until=now + LEASE))
            return seed, None
        except IntegrityError:
            pass
        async with engine.begin() as conn:
            row = (await conn.execute(select(table).where(*record.where()))).first()
            if row is None:
                continue  # expired and deleted in between: claim again
            if now - row.created_at > RETENTION:
                await conn.execute(delete(table).where(*record.where(), table.c.created_at == row.created_at))
                continue
            if row.status is not None or row.request_hash != fingerprint or row.lease_until > now:
                return None, row
            taken = await conn.execute(update(table).where(
                *record.where(), table.c.status.is_(None), table.c.lease_until == row.lease_until,
            ).values(lease_until=now + LEASE))
            if taken.rowcount == 1:
                return row.seed, None
    return None, row


def _answer_repeat(row, fingerprint: str, key: str):
    if row is None or row.status is None and row.request_hash == fingerprint:
        return envelope(409, "idempotency_in_progress",
                        "a request with this Idempotency-Key is still being answered; retry shortly",
                        {"idempotency_key": key}, headers={"retry-after": "1"})
    if row.request_hash != fingerprint:
        return envelope(422, "idempotency_key_reused",
                        "this Idempotency-Key was used with a different request (method, path, query or body)",
                        {"idempotency_key": key})
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


async def _store(engine: AsyncEngine, record: _Record, status: int, body: bytes, headers) -> None:
    kept = {k.decode().lower(): v.decode() for k, v in headers if k.decode().lower() in _REPLAYED_HEADERS}
    async with engine.begin() as conn:
        await conn.execute(update(table).where(*record.where())
                           .values(status=status, body=body, headers=json.dumps(kept)))


async def _let_go(engine: AsyncEngine, record: _Record) -> None:
    """End this attempt without an answer: the claim and its seed stay, for the retry to
    take over at once. If the store cannot be reached, the lease runs out by itself."""
    try:
        async with engine.begin() as conn:
            await conn.execute(update(table).where(*record.where(), table.c.status.is_(None))
                               .values(lease_until=_now()))
    except Exception:
        log.warning("could not let go of Idempotency-Key %r; a retry takes it over after %s", record.key, LEASE,
                    exc_info=True)
