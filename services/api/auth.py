"""Who is calling: API keys (hashed, in the control store), organisations and roles.

Stable names other modules rely on:

- `authenticate(request) -> Caller`: the caller of a request, or ApiError 401
  (no key, unknown key, revoked key). Cached on the request, so it costs one lookup.
- `is_admin(request) -> bool` (async): True only for a valid, unrevoked admin key;
  never raises (no key or a bad key is simply not an admin). For redacting detail,
  e.g. `/healthz` and `/metrics` show tenant-identifying figures only to admins.
- `require_admin`: a FastAPI dependency for operations endpoints; 401 without a valid
  key, 403 `admin_required` for a tenant key. Returns the Caller.
- `Caller(key_id, org_id, role)` with `.admin`.

Roles: `tenant` (the default) sees and changes only its organisation's objects;
`admin` is a tenant of its own organisation too, and may use the operations endpoints
(whole-ledger status, rebuild, verify, dead letters). `runledger keys create --admin`.

Keys are looked up through `KeyCache`: a hit is trusted for `KEY_CACHE_TTL` seconds,
so a revoked key is refused by every replica within that time; `last_used_at` is
written at most once a minute per key and replica, best effort (a write the store
refuses, e.g. on a full disk, is logged and does not fail the request).
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncEngine

from .. import keys, logs
from ..keys import KeyRecord
from .errors import ApiError

log = logging.getLogger("runledger.api")

KEY_CACHE_TTL = 2.0  # seconds a looked-up key is trusted before asking the store again
TOUCH_EVERY = timedelta(seconds=60)
_MAX_CACHED = 10_000


@dataclass(frozen=True)
class Caller:
    key_id: str
    org_id: str
    role: str

    @property
    def admin(self) -> bool:
        return self.role == "admin"


class KeyCache:
    """Known keys by secret hash, each for `ttl` seconds. Unknown keys are not cached,
    so a key created a moment ago works at once."""

    def __init__(self, engine: AsyncEngine, ttl: float = KEY_CACHE_TTL):
        self.engine, self.ttl = engine, ttl
        self._hits: dict[str, tuple[float, KeyRecord]] = {}
        self._touched: dict[str, datetime] = {}
        self._asking: dict[str, asyncio.Future] = {}

    async def get(self, secret: str) -> KeyRecord | None:
        """Concurrent requests with the same key share one store lookup (when the entry
        expires under load, one query, not one per request in flight)."""
        digest = keys.hash_key(secret)
        cached = self._hits.get(digest)
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        asking = self._asking.get(digest)
        if asking is None:
            asking = self._asking[digest] = asyncio.ensure_future(self._lookup(digest, secret))
            asking.add_done_callback(lambda _: self._asking.pop(digest, None))
        return await asyncio.shield(asking)

    async def _lookup(self, digest: str, secret: str) -> KeyRecord | None:
        record = await keys.lookup(self.engine, secret)
        if record is None:
            self._hits.pop(digest, None)
            return None
        if len(self._hits) >= _MAX_CACHED:
            self._hits.clear()
        self._hits[digest] = (time.monotonic(), record)
        await self._touch(record)
        return record

    async def _touch(self, record: KeyRecord) -> None:
        """Best effort: `last_used_at` is a hint for operators, and a store that cannot
        take the write (a full disk, a lock held too long) must not fail the request."""
        now = datetime.now(timezone.utc)
        last = max(filter(None, (record.last_used_at, self._touched.get(record.key_id))), default=None)
        if record.revoked_at is None and (last is None or now - last >= TOUCH_EVERY):
            self._touched[record.key_id] = now
            try:
                await keys.touch(self.engine, record.key_id, now)
            except Exception as exc:  # noqa: BLE001 - logged; tried again a minute later
                log.warning("key %s: last_used_at not written: %s: %s", record.key_id, type(exc).__name__,
                            str(exc).splitlines()[0] if str(exc) else "")


def presented_key(request: Request) -> str | None:
    return key_in(request.headers)


def key_in(headers) -> str | None:
    """The key a request presents (`Api-Key`, or `Authorization: Bearer`), from its headers."""
    key = headers.get("api-key")
    if key:
        return key.strip()
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def authenticate(request: Request) -> Caller:
    cached = getattr(request.state, "caller", None)
    if cached is not None:
        return cached
    secret = presented_key(request)
    if not secret:
        raise ApiError(401, "unauthorized", "missing API key: send 'Api-Key: <key>' or 'Authorization: Bearer <key>'")
    record = await request.app.state.keys.get(secret)
    if record is None:
        raise ApiError(401, "unauthorized", "invalid API key")
    if record.revoked_at is not None:
        raise ApiError(401, "unauthorized", "this API key has been revoked", {"key_id": record.key_id})
    caller = Caller(record.key_id, record.org_id, record.role)
    request.state.caller = caller
    logs.org_id.set(caller.org_id)
    return caller


async def valid_caller(cache: KeyCache, headers) -> Caller | None:
    """The caller a request's headers name, or None for any key `authenticate` would
    refuse (missing, unknown, revoked). Same cache, so the same revocation bound."""
    secret = key_in(headers)
    record = await cache.get(secret) if secret else None
    if record is None or record.revoked_at is not None:
        return None
    return Caller(record.key_id, record.org_id, record.role)


async def is_admin(request: Request) -> bool:
    try:
        return (await authenticate(request)).admin
    except ApiError:
        return False


async def require_admin(request: Request) -> Caller:
    caller = await authenticate(request)
    if not caller.admin:
        raise ApiError(403, "admin_required", "this operation needs an admin key (runledger keys create --admin)")
    return caller


async def org_for(request: Request) -> str:
    return (await authenticate(request)).org_id
