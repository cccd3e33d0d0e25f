"""Versioned read models: where each version lives, and which one is active.

Version 1 is the original location (`readmodel.db`, or PostgreSQL's default schema), so
an existing install is version 1 without moving anything. Version N > 1 lives beside
it: the file `readmodel-vN.db` in the same directory, or the schema `rl_vN` in the same
database (built by the same Alembic chain, run with `search_path` set to that schema).

The control store's `read_model_versions` table is the pointer: each version with its
status, `building -> active -> retired -> dropped`. Exactly one is active; an empty
table means version 1. Every API replica and projector polls it and follows a switch
(`projections.runtime.follow`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.store import migrate
from projections.store.control import read_model_versions
from projections.store.database import DEFAULT_TIMEOUTS, StoreTimeouts, create_schema, make_engine
from projections.store.tables import metadata as read_model_metadata

BUILDING, ACTIVE, RETIRED, DROPPED = "building", "active", "retired", "dropped"


class VersionError(RuntimeError):
    """A version operation that the versions' states do not allow (drop the active one, ...)."""


@dataclass(frozen=True)
class Location:
    version: int
    url: str
    schema: str | None = None

    @property
    def sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @property
    def path(self) -> Path | None:
        return Path(self.url.partition(":///")[2]) if self.sqlite else None

    def describe(self) -> str:
        if self.sqlite:
            return str(self.path)
        return f"schema {self.schema or 'default'} of {self.url.split('@')[-1]}"


@dataclass(frozen=True)
class VersionRow:
    version: int
    status: str
    location: str
    created_at: datetime
    activated_at: datetime | None


def locate(base_url: str, version: int) -> Location:
    if version == 1:
        return Location(1, base_url)
    if base_url.startswith("sqlite"):
        prefix, _, path = base_url.partition(":///")
        base = Path(path)
        return Location(version, f"{prefix}:///{base.with_name(f'{base.stem}-v{version}{base.suffix}')}")
    return Location(version, base_url, f"rl_v{version}")


def open_engine(location: Location, timeouts: StoreTimeouts = DEFAULT_TIMEOUTS) -> AsyncEngine:
    return make_engine(location.url, schema=location.schema, timeouts=timeouts)


async def prepare(location: Location, engine: AsyncEngine) -> None:
    """Create (SQLite) or migrate to head (PostgreSQL) the version's tables."""
    if location.sqlite:
        await create_schema(engine)
    else:
        await migrate.upgrade(location.url, schema=location.schema)


# -- the pointer -------------------------------------------------------------------

async def list_versions(control: AsyncEngine) -> list[VersionRow]:
    async with control.connect() as conn:
        rows = (await conn.execute(select(read_model_versions).order_by(read_model_versions.c.version))).all()
    found = [VersionRow(r.version, r.status, r.location, r.created_at, r.activated_at) for r in rows]
    if not any(r.status == ACTIVE for r in found):
        found.insert(0, VersionRow(1, ACTIVE, "", datetime.fromtimestamp(0, timezone.utc), None))
    return found


async def active_version(control: AsyncEngine) -> int:
    async with control.connect() as conn:
        found = await conn.scalar(select(read_model_versions.c.version)
                                  .where(read_model_versions.c.status == ACTIVE))
    return found or 1


async def create_version(control: AsyncEngine, base_url: str) -> Location:
    """Register the next version as `building`. One rebuild at a time: a version still
    building (a rebuild in progress, or one that died: drop it) refuses another."""
    async with control.begin() as conn:
        rows = (await conn.execute(select(read_model_versions))).all()
        building = [r.version for r in rows if r.status == BUILDING]
        if building:
            raise VersionError(f"version {building[0]} is being built (or its rebuild died: "
                               f"`runledger projections drop {building[0]}`)")
        now = datetime.now(timezone.utc)
        if not any(r.status == ACTIVE for r in rows):  # the implicit version 1 becomes explicit
            await conn.execute(insert(read_model_versions).values(
                version=1, status=ACTIVE, location=locate(base_url, 1).describe(), created_at=now,
                activated_at=now))
        version = max([1, *(r.version for r in rows)]) + 1
        location = locate(base_url, version)
        try:
            await conn.execute(insert(read_model_versions).values(
                version=version, status=BUILDING, location=location.describe(), created_at=now))
        except IntegrityError:
            raise VersionError("another rebuild registered a version at the same moment") from None
    return location


async def activate(control: AsyncEngine, version: int) -> int:
    """Make `version` the active one in one transaction; the previous one is retired
    (kept until dropped). Returns the previous active version."""
    async with control.begin() as conn:
        previous = await conn.scalar(select(read_model_versions.c.version)
                                     .where(read_model_versions.c.status == ACTIVE)) or 1
        await conn.execute(update(read_model_versions).where(read_model_versions.c.status == ACTIVE)
                           .values(status=RETIRED))
        changed = await conn.execute(update(read_model_versions).where(
            read_model_versions.c.version == version, read_model_versions.c.status.in_([BUILDING, RETIRED]),
        ).values(status=ACTIVE, activated_at=datetime.now(timezone.utc)))
        if changed.rowcount != 1:
            raise VersionError(f"version {version} cannot become active (unknown or dropped)")
    return previous


async def drop(control: AsyncEngine, base_url: str, version: int) -> Location:
    """Delete a retired (or abandoned building) version's data, then mark it dropped."""
    rows = {r.version: r for r in await list_versions(control)}
    row = rows.get(version)
    if row is None or row.status == DROPPED:
        raise VersionError(f"no version {version} to drop")
    if row.status == ACTIVE:
        raise VersionError(f"version {version} is active: rebuild or activate another one first")
    location = locate(base_url, version)
    await _delete_data(location)
    async with control.begin() as conn:
        await conn.execute(update(read_model_versions).where(read_model_versions.c.version == version)
                           .values(status=DROPPED))
    return location


async def _delete_data(location: Location) -> None:
    if location.sqlite:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{location.path}{suffix}").unlink(missing_ok=True)
        return
    engine = make_engine(location.url)
    try:
        async with engine.begin() as conn:
            if location.schema:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{_safe(location.schema)}" CASCADE'))
            else:  # version 1 shares the default schema with the control store: its tables only
                await conn.run_sync(read_model_metadata.drop_all)
    finally:
        await engine.dispose()


def _safe(identifier: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", identifier):
        raise ValueError(f"unexpected identifier {identifier!r}")
    return identifier
