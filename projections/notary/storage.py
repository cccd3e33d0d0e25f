"""The tree's rows in the read model (projections/store/tables.py: notary_trees,
notary_tiles, notary_segments): a partition's tail loaded before a batch and its growth
saved in the batch's transaction, and the reads heads and proofs are made of.

Every read here is bounded by what it is asked for: a tail is one row per tile level
(O(log n)); a set of proof ranges costs the tiles under their complete nodes, O(log n)
rows per range and never a scan of the leaves.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Iterable

from sqlalchemy import and_, bindparam, func, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.notary import tiles as tiles_module
from projections.notary.merkle import HASH_SIZE, Range
from projections.notary.tiles import Tail, TileId
from projections.store.tables import notary_segments, notary_tiles, notary_trees

CHUNK = 500  # keys per IN (...) list


class TreeOutOfStep(RuntimeError):
    """A partition's tree does not end where its checkpoint does: a bug (the two commit
    together), so the partition stops, loudly, rather than notarise a hole."""


@dataclass(frozen=True)
class Tree:
    partition: int
    size: int
    next_offset: int


async def trees(conn: AsyncConnection, partitions: Iterable[int] | None = None) -> dict[int, Tree]:
    query = select(notary_trees.c.partition, notary_trees.c.size, notary_trees.c.next_offset)
    if partitions is not None:
        query = query.where(notary_trees.c.partition.in_(list(partitions)))
    return {row[0]: Tree(*row) for row in (await conn.execute(query)).all()}


async def tail(conn: AsyncConnection, partition: int, expected: int) -> Tail | None:
    """The tree's right edge before a batch that starts at checkpoint `expected`. A new tree
    when nothing was projected yet; None for a read model made before the notary (its
    partitions stay unnotarised until `runledger rebuild`)."""
    found = (await trees(conn, [partition])).get(partition)
    if found is None:
        return Tail(partition) if expected == 0 else None
    if found.next_offset != expected:  # a stale view (a zombie: its checkpoint's compare-and-set fails
        # first), or a bug, which `save` raises once that compare-and-set has passed
        return Tail(partition, found.size, found.next_offset, out_of_step=(
            f"partition {partition}: the Merkle tree ends at offset {found.next_offset}, the checkpoint at {expected}"))
    stored = await read_tiles(conn, partition, tiles_module.right_edge(found.size))
    return tiles_module.tail_at(partition, found.size, found.next_offset, stored)


async def save(conn: AsyncConnection, tail: Tail | None) -> None:
    """Inside the batch's write transaction: the grown tree's size (a compare-and-set on the
    size it had), its new and changed tiles, and any segment."""
    if tail is None:
        return
    if tail.out_of_step:
        raise TreeOutOfStep(tail.out_of_step)
    if not tail.grown:
        return
    p = tail.partition
    if tail.next_offset is None:
        await conn.execute(insert(notary_trees).values(partition=p, size=tail.new_size,
                                                       next_offset=tail.new_next_offset))
    else:
        moved = await conn.execute(update(notary_trees).where(
            notary_trees.c.partition == p, notary_trees.c.size == tail.size).values(
            size=tail.new_size, next_offset=tail.new_next_offset))
        if moved.rowcount != 1:
            raise TreeOutOfStep(f"partition {p}: the Merkle tree moved from size {tail.size} meanwhile")
    inserts, updates = [], []
    for (level, index), hashes in sorted(tail.tiles.items()):
        if tail.existed((level, index)):
            updates.append({"k_p": p, "k_level": level, "k_idx": index, "v_hashes": hashes})
        else:
            inserts.append({"partition": p, "level": level, "idx": index, "hashes": hashes})
    if inserts:
        await conn.execute(insert(notary_tiles), inserts)
    if updates:
        await conn.execute(_UPDATE_TILE, updates)
    if tail.segments:
        await conn.execute(insert(notary_segments), [
            {"partition": p, "first_offset": offset, "first_leaf": leaf} for offset, leaf in tail.segments])


_UPDATE_TILE = update(notary_tiles).where(and_(
    notary_tiles.c.partition == bindparam("k_p"), notary_tiles.c.level == bindparam("k_level"),
    notary_tiles.c.idx == bindparam("k_idx"))).values(hashes=bindparam("v_hashes"))


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

