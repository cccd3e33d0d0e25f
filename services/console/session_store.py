"""Console sessions in the control store (`console_sessions`): made at sign-in, found by
the cookie's session id, ended at sign-out, with their key, or by time.

The cookie's id is 32 random bytes; only its SHA-256 is stored, beside the
organisation, the key id, when it was made, its absolute end and when it was last seen
(written at most once a minute). A lookup joins the key, so a revoked key (revoked or
rotated: `services/keys.py` also deletes its sessions) ends every session made with it.
Lookups are cached for `KEY_CACHE_TTL` seconds per process, like API keys, so a
revocation or a sign-out reaches every replica within that time.
"""
from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.store.control import api_keys, console_sessions as table

from ..api.auth import KEY_CACHE_TTL
from ..keys import KeyRecord

TOUCH_EVERY = timedelta(seconds=60)
_MAX_CACHED = 10_000


@dataclass(frozen=True)
class Session:
    key_id: str
    org_id: str
    role: str
    revoked_at: datetime | None  # the key's
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime

    def alive(self, now: datetime, idle: timedelta) -> bool:
        return self.revoked_at is None and now < self.expires_at and now - self.last_seen_at < idle


def digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc)


async def start(engine: AsyncEngine, key: KeyRecord, max_age: timedelta) -> str:
    """A new session for `key`; returns its id (for the cookie, shown nowhere else)."""
    session_id, now = secrets.token_urlsafe(32), _now()
    async with engine.begin() as conn:
        await conn.execute(insert(table).values(session_hash=digest(session_id), key_id=key.key_id,
                                                org_id=key.org_id, created_at=now, expires_at=now + max_age,
                                                last_seen_at=now))
    return session_id


async def end(engine: AsyncEngine, session_id: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(delete(table).where(table.c.session_hash == digest(session_id)))


async def find(engine: AsyncEngine, session_id: str) -> Session | None:
    query = (select(table.c.key_id, table.c.org_id, api_keys.c.role, api_keys.c.revoked_at, table.c.created_at,
                    table.c.expires_at, table.c.last_seen_at)
             .join(api_keys, api_keys.c.key_id == table.c.key_id)
             .where(table.c.session_hash == digest(session_id)))
    async with engine.connect() as conn:
        row = (await conn.execute(query)).first()
    return Session(*row) if row else None


async def seen(engine: AsyncEngine, session_id: str, when: datetime) -> None:
    async with engine.begin() as conn:
        await conn.execute(update(table).where(table.c.session_hash == digest(session_id))
                           .values(last_seen_at=when))


async def expire(engine: AsyncEngine, idle: timedelta) -> int:
    """Delete sessions past either end (run at each sign-in: the table stays small)."""
    now = _now()
    async with engine.begin() as conn:
        done = await conn.execute(delete(table).where((table.c.expires_at <= now) |
                                                      (table.c.last_seen_at <= now - idle)))
    return done.rowcount


class SessionCache:
    """Sessions by id, each trusted for `ttl` seconds (then asked again: a revoked key or
    a sign-out elsewhere is seen). Concurrent lookups of one session share one query."""

    def __init__(self, engine: AsyncEngine, idle: timedelta, ttl: float = KEY_CACHE_TTL):
        self.engine, self.idle, self.ttl = engine, idle, ttl
        self._hits: dict[str, tuple[float, Session]] = {}
        self._asking: dict[str, asyncio.Future] = {}

    async def get(self, session_id: str) -> Session | None:
        """The live session of this id, or None (unknown, ended, expired, its key revoked)."""
        key = digest(session_id)
        cached = self._hits.get(key)
        if cached is None or time.monotonic() - cached[0] >= self.ttl:
            asking = self._asking.get(key)
            if asking is None:
                asking = self._asking[key] = asyncio.ensure_future(self._lookup(key, session_id))
                asking.add_done_callback(lambda _: self._asking.pop(key, None))
            cached = await asyncio.shield(asking)
        if cached is None:
            return None
        session, now = cached[1], _now()
        return session if session.alive(now, self.idle) else None

    def forget(self, session_id: str) -> None:
        self._hits.pop(digest(session_id), None)

    async def _lookup(self, key: str, session_id: str) -> tuple[float, Session] | None:
        session = await find(self.engine, session_id)
        if session is None:
            self._hits.pop(key, None)
            return None
        now = _now()
        if session.alive(now, self.idle) and now - session.last_seen_at >= min(TOUCH_EVERY, self.idle / 4):
            await seen(self.engine, session_id, now)
            session = replace(session, last_seen_at=now)
        if len(self._hits) >= _MAX_CACHED:
            self._hits.clear()
        entry = (time.monotonic(), session)
        self._hits[key] = entry
        return entry
