"""API keys: stored hashed, each belongs to one organisation."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timezone

from fastapi import Request
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.tables import api_keys

from .errors import ApiError

DEFAULT_ORG = "default"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "rl_" + secrets.token_urlsafe(32)


async def store_key(engine: AsyncEngine, key: str, org_id: str, name: str | None = None) -> None:
    """Idempotent: replicas starting with the same bootstrap key may race here."""
    row = dict(key_hash=hash_key(key), org_id=org_id, name=name, created_at=datetime.now(timezone.utc))
    try:
        async with engine.begin() as conn:
            exists = await conn.scalar(select(func.count()).where(api_keys.c.key_hash == row["key_hash"]))
            if not exists:
                await conn.execute(insert(api_keys).values(**row))
    except IntegrityError:
        pass  # another process stored the same key first


async def create_key(engine: AsyncEngine, org_id: str, name: str | None = None) -> str:
    key = new_key()
    await store_key(engine, key, org_id, name)
    return key


async def ensure_bootstrap_key(engine: AsyncEngine, bootstrap_key: str | None) -> str | None:
    """Accept RUNLEDGER_BOOTSTRAP_KEY for the default org; else on a first start with
    no keys at all, create one and return it (the caller prints it once)."""
    if bootstrap_key:
        await store_key(engine, bootstrap_key, DEFAULT_ORG, "bootstrap")
        return None
    async with engine.connect() as conn:
        if await conn.scalar(select(func.count()).select_from(api_keys)):
            return None
    return await create_key(engine, DEFAULT_ORG, "first-start")


def presented_key(request: Request) -> str | None:
    key = request.headers.get("api-key")
    if key:
        return key.strip()
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def org_for(engine: AsyncEngine, request: Request) -> str:
    key = presented_key(request)
    if not key:
        raise ApiError(401, "unauthorized", "missing API key: send 'Api-Key: <key>' or 'Authorization: Bearer <key>'")
    async with engine.connect() as conn:
        org = await conn.scalar(select(api_keys.c.org_id).where(api_keys.c.key_hash == hash_key(key)))
    if org is None:
        raise ApiError(401, "unauthorized", "invalid API key")
    return org
