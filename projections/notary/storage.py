"""The tree's rows in the read model (projections/store/tables.py: notary_tiles,
notary_segments): a partition's tail loaded before a batch and its growth saved in the
batch's transaction, and the reads heads and proofs are made of.

A tree is its tiles and segments and nothing else: its size is where its last level-0
tile ends, its end offset follows from its last segment. Saving a batch's growth is one
upsert of tiles (plus a segment where offsets jump): idempotent, since a tree is a
function of the log's records up to its end.

Every read here is bounded by what it is asked for: a tail is one row per tile level
(O(log n)); a set of proof ranges costs the tiles under their complete nodes, O(log n)
rows per range and never a scan of the leaves; a tree's size, its last tile and segment.
"""
from __future__ import annotations

import bisect
import weakref
from dataclasses import dataclass
from typing import Iterable

from sqlalchemy import func, insert, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.notary import tiles as tiles_module
from projections.notary.merkle import HASH_SIZE, Range
from projections.notary.tiles import Tail, TileId
from projections.store.tables import notary_segments, notary_tiles

CHUNK = 500  # keys per IN (...) list


class TreeOutOfStep(RuntimeError):
    """A partition's tree does not end where its checkpoint does: a bug (the two commit
    together), so the partition stops, loudly, rather than notarise a hole."""


# The tail each partition's last saved batch left, per engine (read-model version), in
# this process: the next batch starts from it without reading when it starts where that
# one ended. Sound because the tree commits with the checkpoint (a batch that did not
# commit ends elsewhere than the checkpoint) and is a function of the log's records up to
# its end (whichever process projected them).
_kept: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # AsyncEngine -> {partition: Tail}


@dataclass(frozen=True)
class Tree:
    partition: int
    size: int
    next_offset: int


async def trees(conn: AsyncConnection, partitions: Iterable[int] | None = None) -> dict[int, Tree]:
    """Each notarised partition's tree (all, or `partitions`): its last segment and its last
    level-0 tile (two indexed rows per partition; the segments are one per gap in offsets)."""
    seg = notary_segments.c
    last = select(seg.partition, func.max(seg.first_offset).label("first_offset")).group_by(seg.partition)
    if partitions is not None:
        last = last.where(seg.partition.in_(list(partitions)))
    last = last.subquery()
    query = select(seg.partition, seg.first_offset, seg.first_leaf).join(
        last, (seg.partition == last.c.partition) & (seg.first_offset == last.c.first_offset))
    found = {}
    for partition, first_offset, first_leaf in (await conn.execute(query)).all():
        t = notary_tiles.c
        row = (await conn.execute(select(t.idx, func.length(t.hashes)).where(t.partition == partition, t.level == 0)
                                  .order_by(t.idx.desc()).limit(1))).first()
        size = (row[0] << tiles_module.HEIGHT) + row[1] // HASH_SIZE if row else 0
        found[partition] = Tree(partition, size, first_offset + size - first_leaf)
    return found


async def tail(conn: AsyncConnection, partition: int, expected: int) -> Tail | None:
    """The tree's right edge before a batch that starts at checkpoint `expected`. A new tree
    when nothing was projected yet; None for a read model made before the notary (its
    partitions stay unnotarised until `runledger rebuild`)."""
    kept = _kept.get(conn.engine, {}).get(partition)
    if kept is not None and kept.next_offset == expected:
        return kept.after()
    found = (await trees(conn, [partition])).get(partition)
    if found is None:
        return Tail(partition) if expected == 0 else None
    if found.next_offset != expected:  # a stale view (a zombie: its checkpoint's compare-and-set fails
        # first), or a bug, which `save` raises once that compare-and-set has passed
        return Tail(partition, found.size, found.next_offset, out_of_step=(
            f"partition {partition}: the Merkle tree ends at offset {found.next_offset}, the checkpoint at {expected}"))
    stored = await read_tiles(conn, partition, tiles_module.right_edge(found.size))
    try:
        return tiles_module.tail_at(partition, found.size, found.next_offset, stored)
    except LookupError as exc:  # tiles committed between the two reads (another projector of this
        # version: a zombie, whose compare-and-set fails first; `save` raises it otherwise)
        return Tail(partition, found.size, found.next_offset, out_of_step=str(exc))


async def save(conn: AsyncConnection, tail: Tail | None) -> None:
    """Inside the batch's write transaction, after its checkpoint's compare-and-set: the
    new and partial tiles in one upsert, and any new segment."""
    if tail is None:
        return
    if tail.out_of_step:
        raise TreeOutOfStep(tail.out_of_step)
    if not tail.grown:
        return
    p = tail.partition
    rows = [{"partition": p, "level": level, "idx": index, "hashes": hashes}
            for (level, index), hashes in sorted(tail.tiles.items())]
    await conn.execute(_upsert_tiles(conn.dialect.name), rows)
    if tail.segments:
        await conn.execute(insert(notary_segments), [
            {"partition": p, "first_offset": offset, "first_leaf": leaf} for offset, leaf in tail.segments])
    # If this transaction does not commit, the checkpoint stays before this tail's end: not used.
    _kept.setdefault(conn.engine, {})[p] = tail.after()


def _upsert_tiles(dialect: str):
    statement = (pg_insert if dialect == "postgresql" else sqlite_insert)(notary_tiles)
    return statement.on_conflict_do_update(index_elements=["partition", "level", "idx"],
                                           set_={"hashes": statement.excluded.hashes})


async def read_tiles(conn: AsyncConnection, partition: int, wanted: Iterable[TileId]) -> dict[TileId, bytes]:
    wanted = sorted(set(wanted))
    found: dict[TileId, bytes] = {}
    for start in range(0, len(wanted), CHUNK):
        query = select(notary_tiles.c.level, notary_tiles.c.idx, notary_tiles.c.hashes).where(
            notary_tiles.c.partition == partition,
            tuple_(notary_tiles.c.level, notary_tiles.c.idx).in_(wanted[start:start + CHUNK]))
        for level, index, hashes in (await conn.execute(query)).all():
            found[(level, index)] = bytes(hashes)
    return found


async def range_hashes(conn: AsyncConnection, partition: int, ranges: Iterable[Range]) -> dict[Range, bytes]:
    """The hashes of proof ranges (RFC-shaped) of one partition's tree, from its tiles."""
    ranges = list(ranges)
    stored = await read_tiles(conn, partition, tiles_module.needed_tiles(ranges))
    return tiles_module.range_hashes(ranges, stored)


async def roots(conn: AsyncConnection, found: dict[int, Tree]) -> dict[int, bytes]:
    """Each tree's root at its stored size: one node per bit of the size."""
    out = {}
    for partition, tree in found.items():
        out[partition] = (await range_hashes(conn, partition, [(0, tree.size)]))[(0, tree.size)]
    return out


async def leaves_of(conn: AsyncConnection, tree: Tree, offsets: Iterable[int]) -> dict[int, int]:
    """Each offset's leaf index in `tree`; an offset the tree has no leaf for is left out
    (beyond its end, or in a gap between segments). Reads the segments over the offsets' span."""
    offsets = sorted(set(offsets))
    if not offsets:
        return {}
    seg = notary_segments.c
    start = await conn.scalar(select(func.max(seg.first_offset)).where(
        seg.partition == tree.partition, seg.first_offset <= offsets[0]))
    query = select(seg.first_offset, seg.first_leaf).where(
        seg.partition == tree.partition, seg.first_offset >= (start if start is not None else offsets[0]),
        seg.first_offset <= offsets[-1]).order_by(seg.first_offset)
    segments = [tuple(row) for row in (await conn.execute(query)).all()]
    firsts = [offset for offset, _ in segments]
    out = {}
    for offset in offsets:
        at = bisect.bisect_right(firsts, offset) - 1
        if at < 0 or offset >= tree.next_offset:
            continue
        first_offset, first_leaf = segments[at]
        leaf = first_leaf + offset - first_offset
        end = segments[at + 1][1] if at + 1 < len(segments) else tree.size
        if leaf < end:
            out[offset] = leaf
    return out


async def leaf_hashes(conn: AsyncConnection, partition: int, leaves: Iterable[int]) -> dict[int, bytes]:
    """The leaf hashes the tree holds at these indexes (its level-0 tiles)."""
    leaves = sorted(set(leaves))
    stored = await read_tiles(conn, partition, {(0, leaf >> tiles_module.HEIGHT) for leaf in leaves})
    out = {}
    for leaf in leaves:
        hashes = stored.get((0, leaf >> tiles_module.HEIGHT), b"")
        at = (leaf & (tiles_module.WIDTH - 1)) * HASH_SIZE
        if len(hashes) >= at + HASH_SIZE:
            out[leaf] = hashes[at:at + HASH_SIZE]
    return out

