"""Any answer can be re-derived and checked: verify a run's rows against its own events,
and repair them.

`verify_run` refolds the run from its events (the event index says where they are; the
log holds them) and compares, table by table and row by row, the live rows with the
derived ones; the first differing field is named down into JSON columns
(`runs.state.error_count`). A run's *state hash* is the sha256 of its canonical rows, so
two read models (or a live model and a replay) can be compared run by run. `repair_run`
rewrites a run's rows from the refold in one transaction, holding the run's row lock so
the projector cannot interleave.

Bounded (docs/api.md, "What a request costs"): the refold goes `run_rows.CHUNK` events
at a time (one log read per stretch of the log, not one per event), the live event index
is compared a chunk at a time as it goes, the documents and targets
`run_rows.DOCUMENTS_AT_ONCE` at a time after it; the derived documents wait in a `Spill`
on disk. Memory holds one chunk, whatever the length of the run's history. At most
`MAX_DIFFERENCES` differences are kept (`difference_count` counts them all). It is CPU
work: it runs in a verification worker process (services/verifications.py) or a CLI
process, never on an API event loop.
"""
from __future__ import annotations

import asyncio
import hashlib
from functools import partial
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Iterator

import orjson
from sqlalchemy import delete, insert, select, union, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from events.log import EventLog, Position
from projections.notary import logcheck
from projections.runtime import changes, run_rows
from projections.runtime.run_rows import RUN_TABLES, ChunkedRefold
from projections.runtime.spill import Spill
from projections.store.read_columns import DERIVED
from projections.store.row_versions import VERSIONS
from projections.store.state_hash import canonical
from projections.store.writes import json_text
from projections.store.tables import event_index, runs

MAX_DIFFERENCES = 100
"""Differences kept in a check (and answered over HTTP); all are counted."""
MAX_VALUE_BYTES = 1024
"""A differing value longer than this as JSON is shown as the start of its JSON text."""
Progress = Callable[[int, int], Any]
"""`report(events_done, events_total)`, called after each chunk."""


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
    differences: list[Difference] = field(default_factory=list)  # the first MAX_DIFFERENCES
    difference_count: int = 0

    @property
    def ok(self) -> bool:
        return not self.difference_count and not self.differences and self.live_hash == self.replayed_hash

    def as_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "ok": self.ok, "events": self.events, "live_hash": self.live_hash,
                "replayed_hash": self.replayed_hash, "difference_count": self.difference_count,
                "differences": [{**d.__dict__, "live": _bounded(d.live), "replayed": _bounded(d.replayed)}
                                for d in self.differences]}


class RunNotFound(LookupError):
    pass


async def verify_run(conn: AsyncConnection, log: EventLog, run_id: str, report: Progress | None = None) -> RunCheck:
    """Check the run's records on the log against their Merkle tree (projections/notary),
    then refold the run (chunk by chunk) and compare with its live rows read through `conn`.
    A record gone from the log leaves nothing to refold: the check names it alone."""
    leaves = logcheck.RecordCheck()
    with Spill() as spill:
        try:
            check = (await _compare(conn, log, run_id, spill, report, leaves))[0]
        except LookupError:
            if not leaves.differences:  # RunNotFound, or a record gone from a log without a tree
                raise
            tampered = leaves.differences
            return RunCheck(run_id, "", "", 0, tampered[:MAX_DIFFERENCES], len(tampered))
    tampered = leaves.differences
    check.differences[:0] = tampered
    del check.differences[MAX_DIFFERENCES:]
    check.difference_count += len(tampered)
    return check


async def _compare(conn: AsyncConnection, log: EventLog, run_id: str, spill: Spill, report: Progress | None,
                   leaves: logcheck.RecordCheck | None = None) -> tuple[RunCheck, ChunkedRefold]:
    """`leaves`: check each record read against its Merkle leaf on the way (the notary).
    The event index is compared once every chunk is folded: a repeated delivery in a later
    chunk counts on an earlier chunk's row (projections/runtime/history_index.py)."""
    total = await run_rows.event_count(conn, run_id)
    live_run = await run_rows.live_run(conn, run_id)
    if not total and not live_run:
        raise RunNotFound(run_id)
    check = _Comparison(run_id)
    refold, done = ChunkedRefold(run_id, spill), 0
    async for positions in run_rows.position_pages(conn, run_id):
        for part in _by_partition(positions):
            records = await run_rows.read_records(log, part, leaves and partial(leaves.records, conn))
            await asyncio.to_thread(refold.fold, records)  # consensus is CPU
            if refold.failure:
                return await _failed(conn, run_id, total, refold), refold
        done += len(positions)
        if report is not None:
            await _call(report, done, total)
    run = refold.state
    check.table("runs", live_run, [run_rows.run_row(run, refold.passes)] if run else [])
    documents = sorted(set(await run_rows.live_document_ids(conn, run_id)) | set(spill.document_ids()))
    for at in range(0, len(documents), run_rows.DOCUMENTS_AT_ONCE):
        ids = documents[at:at + run_rows.DOCUMENTS_AT_ONCE]
        live_docs = await run_rows.live_documents(conn, run_id, ids)
        derived_docs = spill.documents(ids)
        check.table("run_documents", list(live_docs.values()),
                    [run_rows.document_row(run, doc) for doc in derived_docs.values()])
        check.table("document_targets", await run_rows.live_targets(conn, run_id, ids),
                    [row for doc_id, doc in derived_docs.items() if doc_id in refold.finished
                     for row in run_rows.target_rows_of(run, doc)])
    await _in_log_order(conn, check, run_id, "event_index", spill.events())
    await _in_log_order(conn, check, run_id, "event_deliveries", spill.rows("event_deliveries"))
    for name, derived in refold.history_rows().items():
        check.table(name, await run_rows.live_of(conn, name, run_id), derived)
    return check.result(total), refold


async def _in_log_order(conn: AsyncConnection, check: _Comparison, run_id: str, name: str,
                        derived_pages: Iterator[list[dict[str, Any]]]) -> None:
    """Compare a table keyed by (partition, offset) a page at a time: each derived page with
    the live rows after the previous page's last position up to its own last; then the
    live rows beyond (derived has none there)."""
    after = None
    for derived in derived_pages:
        until = (derived[-1]["partition"], derived[-1]["offset"])
        check.table(name, await run_rows.live_between(conn, name, run_id, after, until), derived)
        after = until
    check.table(name, await run_rows.live_between(conn, name, run_id, after, None), [])


async def _failed(conn: AsyncConnection, run_id: str, total: int, refold: ChunkedRefold) -> RunCheck:
    """The fold raised (the run would be quarantined): nothing is derived, so every live row
    differs; the fold's error comes first."""
    check = _Comparison(run_id)
    check.note(Difference("(fold)", run_id, "(error)", None, refold.failure))
    check.table("runs", await run_rows.live_run(conn, run_id), [])
    documents = sorted(await run_rows.live_document_ids(conn, run_id))
    for at in range(0, len(documents), run_rows.DOCUMENTS_AT_ONCE):
        ids = documents[at:at + run_rows.DOCUMENTS_AT_ONCE]
        check.table("run_documents", list((await run_rows.live_documents(conn, run_id, ids)).values()), [])
        check.table("document_targets", await run_rows.live_targets(conn, run_id, ids), [])
    for name in ("event_index", "event_deliveries"):
        await _in_log_order(conn, check, run_id, name, iter(()))
    for name in ("history_heads", "run_snapshots"):
        check.table(name, await run_rows.live_of(conn, name, run_id), [])
    return check.result(total)


async def verify_all(engine: AsyncEngine, log: EventLog, report: Callable[[str, int, int], Any] | None = None
                     ) -> AsyncIterator[RunCheck]:
    """Every run (and every run id with events but no row), one at a time: memory stays
    flat. `report(run_id, events_done, events_total)` after each chunk."""
    async with engine.connect() as conn:
        ids = union(select(runs.c.run_id), select(event_index.c.aggregate_id).where(
            event_index.c.type.in_(RUN_EVENT_TYPES)))
        run_ids = [row[0] for row in (await conn.execute(ids)).all()]
    for run_id in sorted(run_ids):
        async with engine.connect() as conn:
            progress = (lambda done, total, run_id=run_id: report(run_id, done, total)) if report else None
            yield await verify_run(conn, log, run_id, progress)


async def repair_run(engine: AsyncEngine, log: EventLog, run_id: str) -> RunCheck:
    """Rewrite the run's rows from its events in one transaction; returns what differed.
    A run whose fold raises, or whose log records differ from their Merkle leaves, is left
    alone (the check names the error, or the records)."""
    async with engine.begin() as conn:
        # A no-op write first: takes the run's row lock (PostgreSQL) or the write lock
        # (SQLite), so the projector's next batch for this run waits for us.
        await conn.execute(update(runs).where(runs.c.run_id == run_id).values(run_id=runs.c.run_id))
        leaves = logcheck.RecordCheck()
        with Spill() as spill:
            check, refold = await _compare(conn, log, run_id, spill, None, leaves)
            if leaves.differences:  # the log itself was changed: rows are not rewritten from it
                check.differences[:0] = leaves.differences[:MAX_DIFFERENCES]
                check.difference_count += len(leaves.differences)
                return check
            if check.ok or refold.failure:
                return check
            changed = await _rewrite(conn, run_id, refold, spill)
            await changes.record(conn, *changed)
    changes.published(changed[1])  # committed: this process's caches forget the run
    return check


async def _rewrite(conn: AsyncConnection, run_id: str, refold: ChunkedRefold,
                   spill: Spill) -> tuple[int, changes.Changed]:
    """Replace the run's rows with the refold's, at the live run's next version (so live
    pages and caches see the repair: projections/store/row_versions.py). Returns the
    partition and what changed, for `changes.record`."""
    live = await run_rows.live_run(conn, run_id)
    version = (live[0]["version"] or 0) + 1 if live else 1
    partition = await conn.scalar(select(event_index.c.partition).where(event_index.c.aggregate_id == run_id).limit(1))
    for table, _ in RUN_TABLES.values():
        await conn.execute(delete(table).where(run_rows.run_column(table) == run_id))
    run = refold.state
    owners = [("run", row["run_id"], row["org_id"], row["experiment_id"]) for row in live]
    if run is not None:
        await conn.execute(insert(runs), [dict(run_rows.run_row(run, refold.passes), version=version)])
        owners = [("run", run.run_id, run.org_id, run.spec["experiment_id"])]
        ids = spill.document_ids()
        for at in range(0, len(ids), run_rows.DOCUMENTS_AT_ONCE):
            docs = spill.documents(ids[at:at + run_rows.DOCUMENTS_AT_ONCE])
            await conn.execute(insert(RUN_TABLES["run_documents"][0]),
                               [dict(run_rows.document_row(run, doc), version=version) for doc in docs.values()])
            targets = [row for doc_id, doc in docs.items() if doc_id in refold.finished
                       for row in run_rows.target_rows_of(run, doc)]
            if targets:
                await conn.execute(insert(RUN_TABLES["document_targets"][0]), targets)
    for rows in spill.events():
        await conn.execute(insert(event_index), [dict(row, counters=json_text(row.get("counters"))) for row in rows])
    for rows in spill.rows("event_deliveries"):
        await conn.execute(insert(RUN_TABLES["event_deliveries"][0]), rows)
    for name, rows in refold.history_rows().items():
        if rows:
            await conn.execute(insert(RUN_TABLES[name][0]), [_stored_history(name, row) for row in rows])
    return partition or 0, changes.Changed.of(owners)


def _stored_history(name: str, row: dict[str, Any]) -> dict[str, Any]:
    return dict(row, state=json_text(row["state"])) if name == "run_snapshots" else row


RUN_EVENT_TYPES = ("RunCreated", "RunQueued", "RunStarted", "DocumentPassCompleted", "DocumentPassFailed",
                   "RunCancelRequested", "RunFailed")


# -- comparing --------------------------------------------------------------------

class _Comparison:
    """Live and derived rows fed table by table, each table's rows in key order (one call
    per chunk, chunks in order): a digest per table and side, and the differences."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.digests = {side: {name: hashlib.sha256() for name in RUN_TABLES} for side in ("live", "derived")}
        self.kept: dict[str, list[Difference]] = {name: [] for name in ("(fold)", *RUN_TABLES)}
        self.count = 0

    def note(self, difference: Difference) -> None:
        """Kept per table (the first `MAX_DIFFERENCES` of each), listed in table order."""
        self.count += 1
        kept = self.kept[difference.table]
        if len(kept) < MAX_DIFFERENCES:
            kept.append(difference)

    def table(self, name: str, live: list[dict[str, Any]], derived: list[dict[str, Any]]) -> None:
        mine, theirs = _keyed(name, live), _keyed(name, derived)
        _unrendered_as_live(name, mine, theirs)
        for key in sorted(set(mine) | set(theirs)):
            text = "/".join(str(part) for part in key)
            for side, rows in (("live", mine), ("derived", theirs)):
                if key in rows:
                    self.digests[side][name].update(orjson.dumps([list(key), rows[key]], option=orjson.OPT_SORT_KEYS))
                    self.digests[side][name].update(b"\n")
            if key not in mine:
                self.note(Difference(name, text, "(row)", None, "present"))
            elif key not in theirs:
                self.note(Difference(name, text, "(row)", "present", None))
            else:
                found = _first_difference(mine[key], theirs[key])
                if found is not None:
                    self.note(Difference(name, text, *found))

    def result(self, events: int) -> RunCheck:
        hashes = {side: _combined(digests) for side, digests in self.digests.items()}
        listed = [d for kept in self.kept.values() for d in kept][:MAX_DIFFERENCES]
        return RunCheck(self.run_id, hashes["live"], hashes["derived"], events, listed, self.count)


def _combined(digests: dict[str, Any]) -> str:
    """The run's state hash: the sha256 of its tables' digests, in `RUN_TABLES` order."""
    total = hashlib.sha256()
    for name in RUN_TABLES:
        total.update(f"{name}:{digests[name].hexdigest()}\n".encode())
    return total.hexdigest()


def _unrendered_as_live(name: str, live: dict, derived: dict) -> None:
    """A read column derived from what the row holds (read_columns.DERIVED) that is NULL
    (a row written before the column existed: readers derive it) is not a difference; a
    stored value must equal the derivation."""
    for key, mine in live.items():
        theirs = derived.get(key)
        if theirs is not None:
            for column in DERIVED.get(name, ()):
                if mine.get(column) is None:
                    theirs[column] = None


def _keyed(name: str, rows: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    """Rows by key, canonical, without the projector's bookkeeping columns (row_versions.VERSIONS)."""
    key_columns, left_out = RUN_TABLES[name][1], VERSIONS.get(name, ())
    return {tuple(str(row[k]) if not isinstance(row[k], int) else row[k] for k in key_columns):
            canonical({k: v for k, v in row.items() if k not in left_out}) for row in rows}


def _by_partition(positions: list[Position]) -> list[list[Position]]:
    parts: dict[int, list[Position]] = {}
    for position in positions:
        parts.setdefault(position.partition, []).append(position)
    return [parts[p] for p in sorted(parts)]


async def _call(report: Callable, *args) -> None:
    result = report(*args)
    if asyncio.iscoroutine(result):
        await result


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


def _short(value: Any) -> str:
    text = orjson.dumps(_jsonable(value), default=str).decode()
    return text if len(text) <= 80 else text[:77] + "..."


def _bounded(value: Any) -> Any:
    value = _jsonable(value)
    text = orjson.dumps(value).decode()
    return value if len(text) <= MAX_VALUE_BYTES else text[:MAX_VALUE_BYTES - 3] + "..."


def _jsonable(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value, default=str))
