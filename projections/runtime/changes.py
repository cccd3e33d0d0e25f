"""What a committed write changed, told to whoever keeps answers derived from it (the API's
cache of rendered reads, services/api/read_cache.py).

`record` runs inside the write's transaction: it bumps the changed organisations' versions
(projections/store/row_versions.py) and, on PostgreSQL, announces the change on CHANNEL
(`pg_notify`, delivered at commit and never before, to every listening process, whoever
wrote). `published` tells this process's subscribers, to be called once the transaction
has committed: it is what the embedded default (SQLite has no NOTIFY) relies on, and on
PostgreSQL it reaches this process's own readers before the notification does.

Every writer of run, experiment or block rows goes through both: the projector's batches,
a quarantine retry (projections/runtime/retry.py) and a run's repair (verify.repair_run).
"""
from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass, field
from typing import Iterable, Protocol

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.store import row_versions

log = logging.getLogger("runledger.changes")

CHANNEL = "runledger_changes"
"""PostgreSQL notification channel; payload `<schema>\\n<JSON of Changed>` (the schema tells
read-model versions, which share a database, apart)."""
PAYLOAD_BYTES = 7000  # PostgreSQL refuses payloads of 8,000 bytes or more
MAX_NOTIFICATIONS = 8  # beyond this many, the change is announced per organisation instead


@dataclass(frozen=True)
class Changed:
    """`runs`: (run id, organisation, experiment) of each run whose row was written;
    `orgs`: every organisation with a written row; `wide`: organisations whose experiments
    or blocks changed, or whose runs are too many to name (anything of theirs may differ)."""

    runs: tuple[tuple[str, str, str], ...] = ()
    orgs: frozenset[str] = frozenset()
    wide: frozenset[str] = frozenset()

    @classmethod
    def of(cls, owners: Iterable[tuple[str, str, str, str | None]]) -> Changed:
        """From (kind, aggregate id, organisation, experiment id of a run) per written row."""
        runs, orgs, wide = [], set(), set()
        for kind, agg_id, org, experiment in owners:
            orgs.add(org)
            if kind == "run":
                runs.append((agg_id, org, experiment or ""))
            else:
                wide.add(org)
        return cls(tuple(runs), frozenset(orgs), frozenset(wide))

    @classmethod
    def everything_of(cls, orgs: Iterable[str]) -> Changed:
        """Anything of these organisations may have changed."""
        orgs = frozenset(orgs)
        return cls((), orgs, orgs)

    def __bool__(self) -> bool:
        return bool(self.orgs)

    def payloads(self) -> list[str]:
        """JSON texts each within PAYLOAD_BYTES, together saying all of it."""
        chunks, current, size = [], [], 0
        for run in self.runs:
            length = len(orjson.dumps(run)) + 1
            if current and size + length > PAYLOAD_BYTES - 400:
                chunks.append(current)
                current, size = [], 0
            current.append(run)
            size += length
        if current or not chunks:
            chunks.append(current)
        head = {"o": sorted(self.orgs), "w": sorted(self.wide)}
        if len(chunks) > MAX_NOTIFICATIONS or len(orjson.dumps(head)) > PAYLOAD_BYTES - 400:
            return [_whole_organisations(org) for org in sorted(self.orgs)]
        return [orjson.dumps({**head, "r": chunk} if i == 0 else {"o": [], "w": [], "r": chunk}).decode()
                for i, chunk in enumerate(chunks)]

    @classmethod
    def from_payload(cls, text: str) -> Changed:
        data = orjson.loads(text)
        return cls(tuple(tuple(r) for r in data["r"]), frozenset(data["o"]), frozenset(data["w"]))


def _whole_organisations(org: str) -> str:
    return orjson.dumps({"o": [org], "w": [org], "r": []}).decode()


async def record(conn: AsyncConnection, partition: int, changed: Changed) -> None:
    """In the write transaction: the organisations' versions, and (PostgreSQL) the announcement."""
    if not changed:
        return
    await row_versions.bump_orgs(conn, partition, changed.orgs)
    if conn.dialect.name == "postgresql":
        notes = [func.pg_notify(CHANNEL, func.concat(func.current_schema(), "\n" + p)) for p in changed.payloads()]
        await conn.execute(select(*notes))


# -- in this process --------------------------------------------------------------------

class Subscriber(Protocol):
    def changed(self, changed: Changed | None) -> None:
        """`None`: anything may have changed (forget everything)."""


@dataclass
class _Feed:
    subscribers: weakref.WeakSet = field(default_factory=weakref.WeakSet)


_feed = _Feed()


def subscribe(subscriber: Subscriber) -> None:
    """Held weakly: a subscriber that is gone stops hearing without unsubscribing."""
    _feed.subscribers.add(subscriber)


def published(changed: Changed | None) -> None:
    """After the commit: tell this process's subscribers (a failing one is logged, never raised)."""
    if changed is not None and not changed:
        return
    for subscriber in list(_feed.subscribers):
        try:
            subscriber.changed(changed)
        except Exception:  # noqa: BLE001 - a reader's cache must never fail a write
            log.exception("a change subscriber failed")
