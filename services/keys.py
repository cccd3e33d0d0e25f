"""API keys in the control store: create, list, revoke, rotate, look up.

A key's secret (`rl_...`) is shown once, at creation, and stored only as its SHA-256.
Its public handle is the key id (`key_...`), which `list` shows and `revoke`/`rotate`
accept (as they accept the secret itself). Revocation keeps the row (who, when) and
refuses the key from then on.

Organisation names (ORG_SYNTAX): 1 to 64 characters of ASCII letters, digits, `.`,
`_` and `-`, starting with a letter or digit. Anything else (blank, spaces, `:`,
`/`, control characters) is refused when the key is created.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.store.control import ROLES, api_keys, console_sessions

ORG_SYNTAX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
DEFAULT_ORG = "default"


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    org_id: str
    name: str | None
    role: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    key_hash: str = ""

    @property
    def admin(self) -> bool:
        return self.role == "admin"

    def public(self) -> dict:
        """Everything but the hash, JSON-ready."""
        out = asdict(self)
        out.pop("key_hash")
        for name in ("created_at", "last_used_at", "revoked_at"):
            out[name] = out[name].isoformat() if out[name] else None
        return out


class KeyNotFound(LookupError):
    pass


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return "rl_" + secrets.token_urlsafe(32)


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


def check_org(org_id: str) -> str:
    if not isinstance(org_id, str) or not ORG_SYNTAX.fullmatch(org_id):
        raise ValueError(f"invalid organisation name {org_id!r}: use 1-64 ASCII letters, digits, '.', '_' "
                         "or '-', starting with a letter or digit")
    return org_id


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"invalid role {role!r}: one of {', '.join(ROLES)}")
    return role


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _record(row) -> KeyRecord:
    return KeyRecord(row.key_id, row.org_id, row.name, row.role, row.created_at, row.last_used_at,
                     row.revoked_at, row.key_hash)


async def store_key(engine: AsyncEngine, secret: str, org_id: str, name: str | None = None,
                    role: str = "tenant") -> KeyRecord:
    """Idempotent for the same secret: replicas starting with one bootstrap key may race here."""
    row = dict(key_hash=hash_key(secret), key_id=new_key_id(), org_id=check_org(org_id), name=name,
               role=_check_role(role), created_at=_now())
    try:
        async with engine.begin() as conn:
            if (await conn.execute(select(api_keys.c.key_id).where(api_keys.c.key_hash == row["key_hash"]))).first() is None:
                await conn.execute(insert(api_keys).values(**row))
    except IntegrityError:
        pass  # another process stored the same key first
    found = await lookup(engine, secret)
    assert found is not None
    return found


async def create_key(engine: AsyncEngine, org_id: str, name: str | None = None,
                     role: str = "tenant") -> tuple[str, KeyRecord]:
    """A new key: its secret (shown once) and its record."""
    secret = new_secret()
    return secret, await store_key(engine, secret, org_id, name, role)


async def lookup(engine: AsyncEngine, secret: str) -> KeyRecord | None:
    """The key with this secret, revoked or not (the caller decides)."""
    async with engine.connect() as conn:
        row = (await conn.execute(select(api_keys).where(api_keys.c.key_hash == hash_key(secret)))).first()
    return _record(row) if row else None


async def find_key(engine: AsyncEngine, key_or_id: str) -> KeyRecord:
    """By key id (`key_...`) or by the secret itself."""
    query = select(api_keys).where(or_(api_keys.c.key_id == key_or_id, api_keys.c.key_hash == hash_key(key_or_id)))
    async with engine.connect() as conn:
        row = (await conn.execute(query)).first()
    if row is None:
        raise KeyNotFound(f"no API key {key_or_id!r} (give a key id from `runledger keys list`, or the key)")
    return _record(row)


async def list_keys(engine: AsyncEngine, org_id: str | None = None) -> list[KeyRecord]:
    query = select(api_keys).order_by(api_keys.c.org_id, api_keys.c.created_at, api_keys.c.key_id)
    if org_id is not None:
        query = query.where(api_keys.c.org_id == org_id)
    async with engine.connect() as conn:
        return [_record(row) for row in (await conn.execute(query)).all()]


async def revoke_key(engine: AsyncEngine, key_or_id: str) -> KeyRecord:
    """Idempotent: revoking a revoked key keeps its first revocation time. Its console
    sessions end with it."""
    found = await find_key(engine, key_or_id)
    async with engine.begin() as conn:
        await conn.execute(update(api_keys).where(api_keys.c.key_id == found.key_id,
                                                  api_keys.c.revoked_at.is_(None)).values(revoked_at=_now()))
        await conn.execute(delete(console_sessions).where(console_sessions.c.key_id == found.key_id))
    return await find_key(engine, found.key_id)


async def rotate_key(engine: AsyncEngine, key_or_id: str) -> tuple[str, KeyRecord, KeyRecord]:
    """A new key with the old one's organisation, name and role; the old one is revoked
    (its console sessions ended) in the same transaction. Returns (new secret, new record,
    old record)."""
    old = await find_key(engine, key_or_id)
    if old.revoked_at is not None:
        raise ValueError(f"key {old.key_id} is revoked; create a new key instead")
    secret = new_secret()
    row = dict(key_hash=hash_key(secret), key_id=new_key_id(), org_id=old.org_id, name=old.name, role=old.role,
               created_at=_now())
    async with engine.begin() as conn:
        await conn.execute(insert(api_keys).values(**row))
        await conn.execute(update(api_keys).where(api_keys.c.key_id == old.key_id).values(revoked_at=_now()))
        await conn.execute(delete(console_sessions).where(console_sessions.c.key_id == old.key_id))
    return secret, await find_key(engine, row["key_id"]), await find_key(engine, old.key_id)


async def touch(engine: AsyncEngine, key_id: str, when: datetime) -> None:
    async with engine.begin() as conn:
        await conn.execute(update(api_keys).where(api_keys.c.key_id == key_id).values(last_used_at=when))


async def ensure_bootstrap_key(engine: AsyncEngine, bootstrap_key: str | None) -> str | None:
    """Accept RUNLEDGER_BOOTSTRAP_KEY for the default org; else on a first start with
    no keys at all, create one and return it (the caller prints it once)."""
    if bootstrap_key:
        await store_key(engine, bootstrap_key, DEFAULT_ORG, "bootstrap")
        return None
    async with engine.connect() as conn:
        if (await conn.execute(select(api_keys.c.key_id).limit(1))).first() is not None:
            return None
    secret, _ = await create_key(engine, DEFAULT_ORG, "first-start")
    return secret
