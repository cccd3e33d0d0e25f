"""Projector heartbeats in the read model: every projector process (the API's embedded
task or a `runledger project` member) rewrites its row every few seconds, so the health
of any API replica can say which partitions are held, by whom, and whether anyone is
alive to apply the lag. A row whose `beat_at` is older than the TTL is a dead member.

`beat_at` is the projector host's clock, read against the API host's: hosts are
assumed NTP-synchronised to well within the TTL (default 10 s).
"""
from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections.store.tables import projector_heartbeats as beats

PRUNE_AFTER = timedelta(days=1)


@dataclass
class Member:
    """Who is beating: one projector in one process."""

    projection: str
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    member_id: str = ""
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def __post_init__(self) -> None:
        self.member_id = self.member_id or f"{self.host}:{self.pid}:{uuid.uuid4().hex[:8]}"


async def beat(engine: AsyncEngine, member: Member, **values: Any) -> None:
    """Upsert the member's row: partitions, state, detail, applied, last_batch_at."""
    now = datetime.now(timezone.utc)
    row = dict(projection=member.projection, host=member.host, pid=member.pid, started_at=member.started_at,
               beat_at=now, **values)
    async with engine.begin() as conn:
        done = await conn.execute(update(beats).where(beats.c.member_id == member.member_id).values(**row))
        if done.rowcount == 0:
            try:
                async with conn.begin_nested():
                    await conn.execute(beats.insert().values(member_id=member.member_id, **row))
            except IntegrityError:
                pass  # raced with ourselves across a retry: the next beat updates it
        await conn.execute(delete(beats).where(beats.c.beat_at < now - PRUNE_AFTER))


async def forget(engine: AsyncEngine, member: Member) -> None:
    """A member that leaves cleanly removes its row (it holds nothing any more)."""
    async with engine.begin() as conn:
        await conn.execute(delete(beats).where(beats.c.member_id == member.member_id))


async def members(conn: AsyncConnection, ttl: float, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every recorded member, with `alive` (beat within `ttl` seconds) and `age_s`."""
    now = now or datetime.now(timezone.utc)
    rows = (await conn.execute(select(beats).order_by(beats.c.member_id))).all()
    found = []
    for row in rows:
        data = dict(row._mapping)
        age = (now - data["beat_at"]).total_seconds()
        found.append({**data, "age_s": round(age, 3), "alive": age <= ttl and data["state"] != "down"})
    return found
