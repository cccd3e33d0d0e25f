"""The log itself, checked against its Merkle trees (`runledger verify`): each record's leaf
is recomputed from the log and compared with the leaf the tree holds at its position.

An edited record (its key, value or time changed, or two records swapped) is reported as
"edited record at p:o"; a record the tree has and the log lacks as "missing record at p:o";
one the log has where the tree has none as "inserted record at p:o". The whole-log check
also recomputes each tree's root from its stored leaves and compares it with the root its
upper tiles give (a read model whose tree was changed). A run's check costs its records
(read from the log in runs of nearby offsets) and their leaves; the whole-log check reads
every partition once, in chunks (a CLI command or a job: never on an API request).
"""
from __future__ import annotations

import asyncio
import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from events.log import READ_AT_MOST, EventLog, Record, read_at
from projections.notary import proofs, storage
from projections.notary.leaf import record_hash
from projections.notary.merkle import HASH_SIZE, Frontier
from projections.notary.tiles import HEIGHT, WIDTH
from projections.store.tables import notary_segments, notary_tiles

CHUNK_TILES = 128  # level-0 tiles (2,048 leaves) compared at a time


@dataclass
class LogDifference:
    """Shaped like projections.runtime.verify.Difference, so a run's check lists both."""

    table: str
    key: str  # the position, p:o
    field: str  # edited | missing | inserted | tree
    live: Any = None  # what the log holds (its leaf hash), if anything
    replayed: Any = None  # what the tree holds

    def describe(self) -> str:
        if self.field == "tree":
            return f"partition {self.key}: {self.live}"
        return f"{self.field} record at {self.key}"


def _difference(kind: str, partition: int, offset: int, log_hash: bytes | None = None,
                tree_hash: bytes | None = None) -> LogDifference:
    return LogDifference("(log)", f"{partition}:{offset}", kind, log_hash.hex() if log_hash else None,
                         tree_hash.hex() if tree_hash else None)


async def run_differences(conn: AsyncConnection, log: EventLog, run_id: str) -> list[LogDifference]:
    """The run's records on the log against the leaves their partition's tree holds, in log
    order, `CHUNK_RECORDS` at a time. Nothing for a partition without a tree (a read model
    made before the notary). `verify` checks the records it reads anyway (`RecordCheck`)."""
    check = RecordCheck()
    positions = await proofs.run_positions(conn, run_id)
    for at in range(0, len(positions), CHUNK_RECORDS):
        by_partition: dict[int, list[int]] = defaultdict(list)
        for partition, offset in positions[at:at + CHUNK_RECORDS]:
            by_partition[partition].append(offset)
        for partition, offsets in sorted(by_partition.items()):
            await check.records(conn, partition, offsets, await read_at(log, partition, offsets))
    return check.differences


CHUNK_RECORDS = 2_000


class RecordCheck:
    """Records read from the log, checked against the leaves their partition's tree holds at
    their positions, a batch of them at a time (the trees are read once)."""

    def __init__(self) -> None:
        self.differences: list[LogDifference] = []
        self._trees: dict[int, storage.Tree | None] = {}

    async def records(self, conn: AsyncConnection, partition: int, offsets: list[int],
                      read: dict[int, Record]) -> None:
        """`read`: what the log holds at `offsets` (an offset it lacks is missing)."""
        if partition not in self._trees:
            self._trees[partition] = (await storage.trees(conn, [partition])).get(partition)
        tree = self._trees[partition]
        if tree is None:
            return
        leaves = await storage.leaves_of(conn, tree, offsets)
        stored = await storage.leaf_hashes(conn, partition, leaves.values())
        hashed = await asyncio.to_thread(lambda: {o: record_hash(r) for o, r in read.items()})
        for offset in offsets:
            if offset not in leaves or leaves[offset] not in stored:
                self.differences.append(LogDifference(
                    "(log)", f"{partition}:{offset}", "tree",
                    f"the event index lists {partition}:{offset}, its tree has no leaf there"))
            elif offset not in read:
                self.differences.append(_difference("missing", partition, offset, None, stored[leaves[offset]]))
            elif hashed[offset] != stored[leaves[offset]]:
                self.differences.append(_difference("edited", partition, offset, hashed[offset],
                                                    stored[leaves[offset]]))


@dataclass
class LogReport:
    records: int = 0  # leaves compared
    problems: list[LogDifference] = field(default_factory=list)  # the first `limit` found
    more: int = 0  # problems beyond those
    unnotarised: list[int] = field(default_factory=list)  # partitions with records and no tree

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, problem: LogDifference, limit: int) -> None:
        if len(self.problems) < limit:
            self.problems.append(problem)
        else:
            self.more += 1

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "records": self.records, "problems": [p.describe() for p in self.problems],
                "more": self.more, "unnotarised": self.unnotarised}


async def check_log(engine: AsyncEngine, log: EventLog, limit: int = 20) -> LogReport:
    """Every partition's log, record by record, against its tree."""
    report = LogReport()
    ends = await log.end_offsets()
    async with engine.connect() as conn:
        found = await storage.trees(conn)
    for partition in sorted(ends):
        tree = found.get(partition)
        if tree is None:
            if ends[partition]:
                report.unnotarised.append(partition)
            continue
        async with engine.connect() as conn:
            await _check_partition(conn, log, tree, report, limit)
    return report


async def _check_partition(conn: AsyncConnection, log: EventLog, tree: storage.Tree, report: LogReport,
                           limit: int) -> None:
    p = tree.partition
    segments = [tuple(r) for r in (await conn.execute(
        select(notary_segments.c.first_offset, notary_segments.c.first_leaf)
        .where(notary_segments.c.partition == p).order_by(notary_segments.c.first_leaf))).all()]
    frontier, log_from = Frontier(), 0
    for first_tile in range(0, (tree.size + WIDTH - 1) >> HEIGHT, CHUNK_TILES):
        expected = await _stored_leaves(conn, p, first_tile, tree.size, segments)
        for _, value in expected:
            frontier.append(value)
        last = expected[-1][0] if expected else log_from - 1
        actual = await _log_records(log, p, log_from, last)
        _compare(p, expected, actual, report, limit)
        report.records += len(expected)
        log_from = last + 1
    if frontier.size != tree.size:
        report.add(LogDifference("(log)", str(p), "tree", f"its tree holds {frontier.size} leaves, not {tree.size}"), limit)
        return
    try:
        stored_root = (await storage.roots(conn, {p: tree}))[p]
    except LookupError as exc:
        report.add(LogDifference("(log)", str(p), "tree", f"the tree's tiles are damaged: {exc}"), limit)
        return
    if frontier.root() != stored_root:
        report.add(LogDifference("(log)", str(p), "tree", "the tree's upper tiles do not match its leaves "
                                 "(the read model's tree was changed)"), limit)


async def _stored_leaves(conn, partition: int, first_tile: int, size: int, segments) -> list[tuple[int, bytes]]:
    """(offset, leaf hash) of the leaves of CHUNK_TILES level-0 tiles, in order."""
    rows = (await conn.execute(select(notary_tiles.c.idx, notary_tiles.c.hashes).where(
        notary_tiles.c.partition == partition, notary_tiles.c.level == 0,
        notary_tiles.c.idx >= first_tile, notary_tiles.c.idx < first_tile + CHUNK_TILES)
        .order_by(notary_tiles.c.idx))).all()
    out = []
    for index, hashes in rows:
        hashes = bytes(hashes)
        for i in range(len(hashes) // HASH_SIZE):
            leaf = (index << HEIGHT) + i
            if leaf < size:
                out.append((_offset_of(leaf, segments), hashes[i * HASH_SIZE:(i + 1) * HASH_SIZE]))
    return out


def _offset_of(leaf: int, segments: list[tuple[int, int]]) -> int:
    first_offset, first_leaf = segments[bisect.bisect_right(segments, leaf, key=lambda s: s[1]) - 1]
    return first_offset + leaf - first_leaf


async def _log_records(log: EventLog, partition: int, first: int, last: int) -> list[Record]:
    records, at = [], first
    while at <= last:
        got = await log.read(partition, at, min(READ_AT_MOST, last - at + 1))
        got = [r for r in got if r.offset <= last]
        if not got:
            break
        records.extend(got)
        at = got[-1].offset + 1
    return records


def _compare(p: int, expected: list[tuple[int, bytes]], actual: list[Record], report: LogReport, limit: int) -> None:
    held = {r.offset: r for r in actual}
    stored = dict(expected)
    for offset in sorted(set(held) | set(stored)):
        if offset not in stored:
            report.add(_difference("inserted", p, offset, record_hash(held[offset])), limit)
        elif offset not in held:
            report.add(_difference("missing", p, offset, None, stored[offset]), limit)
        elif record_hash(held[offset]) != stored[offset]:
            report.add(_difference("edited", p, offset, record_hash(held[offset]), stored[offset]), limit)
