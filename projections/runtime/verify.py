"""Any answer can be re-derived and checked: verify a run's rows against its own events,
and repair them.

`verify_run` refolds the run from its events (the event index, in log order) and
compares, table by table and row by row, the live rows with the derived ones; the
first differing field is named down into JSON columns (`runs.state.error_count`).
A run's *state hash* is the sha256 of its canonical rows, so two read models (or a
live model and a replay) can be compared run by run. `repair_run` rewrites a run's
rows from the refold in one transaction, holding the run's row lock so the projector
cannot interleave.
"""
from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Iterator

import orjson
from sqlalchemy import delete, insert, select, union, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from events.log import EventLog
from projections.runtime.run_rows import (
    RUN_TABLES, derived_rows, live_rows, read_records, refold, run_column, stored_positions
)
from projections.store.read_columns import DERIVED
from projections.store.state_hash import canonical
from projections.store.tables import event_index, runs


@dataclass
class Difference:
    table: str
    key: str
    field: str
    live: Any
    replayed: Any

    def describe(self) -> str:
        return f"{self.table}[{self.key}].{self.field}: live {_short(self.live)} != replayed {_short(self.replayed)}"


@dataclass
class RunCheck:
    run_id: str
    live_hash: str
    replayed_hash: str
    events: int
    differences: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences and self.live_hash == self.replayed_hash

    def as_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "ok": self.ok, "events": self.events, "live_hash": self.live_hash,
                "replayed_hash": self.replayed_hash,
                "differences": [{**d.__dict__, "live": _jsonable(d.live), "replayed": _jsonable(d.replayed)}
                                for d in self.differences]}


class RunNotFound(LookupError):
    pass


async def verify_run(conn: AsyncConnection, log: EventLog, run_id: str) -> RunCheck:
    live, derived, events, failure = await _live_and_derived(conn, log, run_id)
    check = RunCheck(run_id, rows_hash(live), rows_hash(derived), events, list(differences(live, derived)))
    if failure:
        check.differences.insert(0, Difference("(fold)", run_id, "(error)", None, failure))
    return check


async def _live_and_derived(conn: AsyncConnection, log: EventLog, run_id: str):
    positions = await stored_positions(conn, run_id)
    live = await live_rows(conn, run_id)
    if not positions and not live["runs"]:
        raise RunNotFound(run_id)
    records = await read_records(log, positions)
    refolded = await asyncio.to_thread(refold, run_id, records)  # consensus is CPU: off the event loop
    derived = derived_rows(refolded)
    _unrendered_as_live(live, derived)
    return live, derived, len(positions), refolded.failure


def _unrendered_as_live(live: dict, derived: dict) -> None:
    """A read column derived from `state` that is NULL (a row written before the column
    existed: readers render it from `state`) is not a difference; a stored value must
    equal the rendering. Only the run's tables are compared here."""
    for name, columns in DERIVED.items():
        if name not in RUN_TABLES:
            continue
        stored = {tuple(row[k] for k in RUN_TABLES[name][1]): row for row in live[name]}
        for row in derived[name]:
            mine = stored.get(tuple(row[k] for k in RUN_TABLES[name][1]))
            for column in columns:
                if mine is not None and mine.get(column) is None:
                    row[column] = None


async def verify_all(engine: AsyncEngine, log: EventLog) -> AsyncIterator[RunCheck]:
    """Every run (and every run id with events but no row), one at a time: memory stays flat."""
    async with engine.connect() as conn:
        ids = union(select(runs.c.run_id), select(event_index.c.aggregate_id).where(
            event_index.c.type.in_(RUN_EVENT_TYPES)))
        run_ids = [row[0] for row in (await conn.execute(ids)).all()]
    for run_id in sorted(run_ids):
        async with engine.connect() as conn:
            yield await verify_run(conn, log, run_id)


async def repair_run(engine: AsyncEngine, log: EventLog, run_id: str) -> RunCheck:
    """Rewrite the run's rows from its events in one transaction; returns what differed.
    A run whose fold raises is left alone (the check names the error)."""
    async with engine.begin() as conn:
        # A no-op write first: takes the run's row lock (PostgreSQL) or the write lock
        # (SQLite), so the projector's next batch for this run waits for us.
        await conn.execute(update(runs).where(runs.c.run_id == run_id).values(run_id=runs.c.run_id))
        live, derived, events, failure = await _live_and_derived(conn, log, run_id)
        check = RunCheck(run_id, rows_hash(live), rows_hash(derived), events, list(differences(live, derived)))
        if check.ok or failure:
            if failure:
                check.differences.insert(0, Difference("(fold)", run_id, "(error)", None, failure))
            return check
        for name, (table, _) in RUN_TABLES.items():
            await conn.execute(delete(table).where(run_column(table) == run_id))
            if derived[name]:
                await conn.execute(insert(table), derived[name])
    return check


RUN_EVENT_TYPES = ("RunCreated", "RunQueued", "RunStarted", "DocumentPassCompleted", "DocumentPassFailed",
                   "RunCancelRequested", "RunFailed")


# -- comparing --------------------------------------------------------------------

def rows_hash(rows: dict[str, list[dict[str, Any]]]) -> str:
    digest = hashlib.sha256()
    for name in RUN_TABLES:
        for key, row in sorted(_keyed(name, rows[name]).items()):
            digest.update(orjson.dumps([key, row], option=orjson.OPT_SORT_KEYS))
            digest.update(b"\n")
    return digest.hexdigest()


def differences(live: dict, derived: dict) -> Iterator[Difference]:
    for name in RUN_TABLES:
        mine, theirs = _keyed(name, live[name]), _keyed(name, derived[name])
        for key in sorted(set(mine) | set(theirs)):
            if key not in mine:
                yield Difference(name, key, "(row)", None, "present")
            elif key not in theirs:
                yield Difference(name, key, "(row)", "present", None)
            else:
                found = _first_difference(mine[key], theirs[key])
                if found is not None:
                    yield Difference(name, key, *found)


def _first_difference(live: Any, replayed: Any, path: str = "") -> tuple[str, Any, Any] | None:
    if isinstance(live, dict) and isinstance(replayed, dict):
        for name in sorted(set(live) | set(replayed), key=str):
            found = _first_difference(live.get(name), replayed.get(name), f"{path}.{name}" if path else str(name))
            if found is not None:
                return found
        return None
    if isinstance(live, list) and isinstance(replayed, list) and len(live) == len(replayed):
        for i, (a, b) in enumerate(zip(live, replayed)):
            found = _first_difference(a, b, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    return None if live == replayed else (path or "(value)", live, replayed)


def _keyed(name: str, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    key_columns = RUN_TABLES[name][1]
    return {"/".join(str(row[k]) for k in key_columns): canonical(row) for row in rows}


def _short(value: Any) -> str:
    text = orjson.dumps(_jsonable(value), default=str).decode()
    return text if len(text) <= 80 else text[:77] + "..."


def _jsonable(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value, default=str))
