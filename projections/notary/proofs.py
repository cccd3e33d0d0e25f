"""Heads, digests and a run's proof bundle, read from the stored tree and the log.

Cost (the bounded-cost contract of every request): a digest reads one tree row per
partition and the tiles under each root (one per bit of the size); a run's bundle reads
the run's positions from the event index, its records from the log (nearby ones in one
read), and the tiles under its records' inclusion paths: O(records x log n) hashes at
most, far fewer as records of one run share their paths. Never the other leaves, never a
recomputation from all leaves. The hashing and the document are built in a worker thread.
"""
from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any, Iterable

from sqlalchemy import func, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from events.log import EventLog, Record, read_at
from projections.notary import merkle, storage, tiles
from projections.notary.bundle import Consistency, bundle_document, digest_document
from projections.notary.heads import SignedHead, Signer, TreeHead
from projections.store.tables import event_deliveries, event_index

DIGEST_AGGREGATE = "notary"  # the aggregate (and log key) of the signed heads published on the log


class SinceError(ValueError):
    """An older size the tree has not reached (or a partition it does not have)."""


async def signed_heads(conn: AsyncConnection, signer: Signer, partitions: Iterable[int] | None = None
                       ) -> tuple[list[SignedHead], dict[int, storage.Tree]]:
    """The current head of each notarised partition (all, or `partitions`), signed now."""
    found = await storage.trees(conn, partitions)
    return await sign_trees(conn, signer, found), found


async def sign_trees(conn: AsyncConnection, signer: Signer, found: dict[int, storage.Tree]) -> list[SignedHead]:
    """Heads of the trees at the sizes `found` (read before), signed now."""
    roots = await storage.roots(conn, found)
    now = int(time.time() * 1000)
    return [signer.sign(TreeHead(p, found[p].size, roots[p], now)) for p in sorted(found)]


async def consistency(conn: AsyncConnection, found: dict[int, storage.Tree], since: dict[int, int]) -> list[Consistency]:
    """Consistency proofs from the older sizes `since` (partition -> size) to the trees' sizes."""
    out, ranges = [], {}
    for partition, old in sorted(since.items()):
        tree = found.get(partition)
        if tree is None:
            continue
        if old > tree.size:
            raise SinceError(f"partition {partition} has {tree.size} records in its tree, not {old} or more")
        ranges[partition] = merkle.consistency_ranges(old, tree.size)
    for partition, spans in ranges.items():
        hashes = await _hashes(conn, partition, spans)
        out.append(Consistency(partition, since[partition], found[partition].size, tuple(hashes[s] for s in spans)))
    return out


async def digest(conn: AsyncConnection, signer: Signer, since: dict[int, int] | None = None) -> dict[str, Any]:
    heads, found = await signed_heads(conn, signer)
    proofs = await consistency(conn, found, since or {})
    return digest_document(signer.public_key, signer.key_id, heads, proofs)


class RunNotNotarised(LookupError):
    """The run has no records in any tree (unknown, or projected before the notary)."""


PAGE_RECORDS = 2_000
"""Records a page of a run's proof holds at most (besides its byte budget)."""
RECORD_OVERHEAD = 320
"""Bytes a record adds to a bundle besides its value in base64 (position, key, leaf, its
share of the proof hashes), for fitting a page to its byte budget."""


async def run_bundle(conn: AsyncConnection, log: EventLog, signer: Signer, run_id: str, org_id: str,
                     since: dict[int, int] | None = None, after: int | None = None,
                     budget: int | None = None) -> dict[str, Any]:
    """The run's proof bundle: all its records (the CLI's export), or, with a byte `budget`
    (an HTTP request), one page of them after the offset `after`, at most PAGE_RECORDS and
    about `budget` bytes (at least one record), with `page.after` naming where the next
    page starts (None on the last). Every page is a bundle `audit check` verifies alone."""
    limit = PAGE_RECORDS + 1 if budget is not None else None
    positions = await run_positions(conn, run_id, after, limit)
    more = limit is not None and len(positions) == limit
    positions = positions[:PAGE_RECORDS] if more else positions
    found = await storage.trees(conn, {p for p, _ in positions})
    if not positions or not found:
        if after is not None and not positions:
            raise RunNotNotarised(f"{run_id}: no records after offset {after}")
        raise RunNotNotarised(run_id)
    by_partition: dict[int, list[int]] = defaultdict(list)
    for partition, offset in positions:
        by_partition[partition].append(offset)
    read: dict[int, dict[int, Record]] = {p: await read_at(log, p, offsets) for p, offsets in by_partition.items()}
    if budget is not None:
        kept = _within(positions, read, budget)
        more, positions = more or kept < len(positions), positions[:kept]
        by_partition = defaultdict(list)
        for partition, offset in positions:
            by_partition[partition].append(offset)
    records: list[tuple[Record, int]] = []
    missing: list[dict[str, str]] = []
    hashes: dict[tuple[int, merkle.Range], bytes] = {}
    for partition, offsets in sorted(by_partition.items()):
        tree = found.get(partition)
        if tree is None:
            raise RunNotNotarised(f"{run_id}: partition {partition} has no Merkle tree (run `runledger rebuild`)")
        leaves = await storage.leaves_of(conn, tree, offsets)
        for offset in offsets:
            if offset in read[partition] and offset in leaves:
                records.append((read[partition][offset], leaves[offset]))
            else:
                why = "absent from the log" if offset not in read[partition] else "not in the partition's Merkle tree"
                missing.append({"position": f"{partition}:{offset}", "reason": why})
        spans = await asyncio.to_thread(_paths_spans, leaves.values(), tree.size)
        for span, value in (await _hashes(conn, partition, spans)).items():
            hashes[(partition, span)] = value
    heads = await sign_trees(conn, signer, found)
    proofs = await consistency(conn, found, {p: s for p, s in (since or {}).items() if p in found})
    document = await asyncio.to_thread(bundle_document, run_id, org_id, signer.public_key, signer.key_id, heads,
                                       records, hashes, proofs, missing)
    if budget is not None:
        document["page"] = {"after": positions[-1][1] if more else None}
    return document


def _within(positions: list[tuple[int, int]], read: dict[int, dict[int, Record]], budget: int) -> int:
    """How many of `positions` fit `budget` bytes as bundle records (at least one)."""
    used = 0
    for count, (partition, offset) in enumerate(positions):
        record = read[partition].get(offset)
        used += RECORD_OVERHEAD + (len(record.value) * 4 // 3 + len(record.key) if record is not None else 0)
        if used > budget and count:
            return count
    return len(positions)


async def run_record_count(conn: AsyncConnection, run_id: str) -> int:
    """How many records the run's history holds (an index count; nothing decoded)."""
    return await conn.scalar(select(func.count()).select_from(event_index).where(event_index.c.aggregate_id == run_id))


async def latest_published(conn: AsyncConnection) -> dict[str, Any] | None:
    """The newest digest the log carries (a TreeHeadsPublished event): where, when, its heads."""
    row = (await conn.execute(select(event_index.c.partition, event_index.c.offset, event_index.c.body)
                              .where(event_index.c.aggregate_id == DIGEST_AGGREGATE, event_index.c.accepted.is_(True))
                              .order_by(event_index.c.partition.desc(), event_index.c.offset.desc()).limit(1))).first()
    if row is None or not row.body:
        return None
    payload = row.body["payload"]
    return {"position": f"{row.partition}:{row.offset}", "key_id": payload["key_id"], "heads": payload["heads"],
            "time_ms": max((h["time_ms"] for h in payload["heads"]), default=None)}


async def run_positions(conn: AsyncConnection, run_id: str, after: int | None = None,
                        limit: int | None = None) -> list[tuple[int, int]]:
    """Where the run's records are on the log, in log order: its indexed events and the
    repeated deliveries of accepted ones (`event_deliveries`: the index keeps one row per
    event, the log every record), after the offset `after`, at most `limit` of them."""
    indexed = select(event_index.c.partition, event_index.c.offset).where(event_index.c.aggregate_id == run_id)
    repeats = select(event_deliveries.c.partition, event_deliveries.c.offset).where(
        event_deliveries.c.aggregate_id == run_id)
    if after is not None:
        indexed = indexed.where(event_index.c.offset > after)
        repeats = repeats.where(event_deliveries.c.offset > after)
    found = union_all(indexed, repeats).subquery()
    query = select(found.c.partition, found.c["offset"]).order_by(found.c.partition, found.c["offset"])
    if limit is not None:
        query = query.limit(limit)
    return [tuple(row) for row in (await conn.execute(query)).all()]


def _paths_spans(leaves: Iterable[int], size: int) -> set[merkle.Range]:
    return {span for leaf in leaves for span in merkle.inclusion_ranges(leaf, size)}


async def _hashes(conn: AsyncConnection, partition: int, spans: Iterable[merkle.Range]) -> dict[merkle.Range, bytes]:
    """The spans' hashes from the tiles under them; the CPU parts in a worker thread."""
    spans = list(spans)
    wanted = await asyncio.to_thread(tiles.needed_tiles, spans) if len(spans) > 64 else tiles.needed_tiles(spans)
    stored = await storage.read_tiles(conn, partition, wanted)
    return await asyncio.to_thread(tiles.range_hashes, spans, stored)
