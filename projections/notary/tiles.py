"""How a partition's tree is stored: tiles of hashes, as Go's checksum database lays out
its transparency log (golang.org/x/mod/sumdb/tlog), with tiles of height 4.

A tile of level L and index k holds the hashes of the tree's complete nodes at height
4L with indexes 16k .. 16k+15: level 0 tiles hold leaf hashes, level 1 tiles the roots of
16-leaf subtrees, and so on. The last tile of each level is partial (fewer than 16
hashes) until it fills. Any complete node of the tree is then read from *one* tile: a node
of height 4L + r is the root of 2^r consecutive hashes of a level-L tile (at most 8, so at
most 7 hashes to recompute). A proof needs O(log n) nodes, hence O(log n) tile rows, and
the tree's root at size n needs one node per bit of n.

Growing by a batch of records (`Tail.grow`, pure: run off the event loop) touches only the
right edge: the partial tile of each level (loaded before, `Tail`), plus one new tile per
16 records (and one per 256 at level 1, ...): about one row per 15 records. Where the
record offsets jump (Kafka's transaction markers), a *segment* row maps the new offset to
its leaf index, so any record's leaf is found from its offset.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

from events.log import Record
from projections.notary.leaf import record_hash
from projections.notary.merkle import HASH_SIZE, Node, Range, complete_nodes, fold_right, node_hash

HEIGHT = 4
WIDTH = 1 << HEIGHT  # hashes per full tile

TileId = tuple[int, int]  # (tile level, tile index)


def tile_of(node: Node) -> tuple[TileId, int, int]:
    """Where a complete node is computed from: its tile, and the first and count of the
    tile's hashes under it."""
    level, index = node
    tile_level, rest = divmod(level, HEIGHT)
    first = index << rest
    return (tile_level, first >> HEIGHT), first & (WIDTH - 1), 1 << rest


def node_from_tile(hashes: bytes, first: int, count: int) -> bytes:
    """The root of `count` (a power of two) consecutive hashes of a tile, from `first`."""
    end = (first + count) * HASH_SIZE
    if len(hashes) < end:
        raise LookupError(f"the tile holds {len(hashes) // HASH_SIZE} hashes, the node needs {first + count}")
    layer = [hashes[i:i + HASH_SIZE] for i in range(first * HASH_SIZE, end, HASH_SIZE)]
    while len(layer) > 1:
        layer = [node_hash(layer[i], layer[i + 1]) for i in range(0, len(layer), 2)]
    return layer[0]


def right_edge(size: int) -> list[TileId]:
    """The partial tile of every level at `size` (the ones a growth extends), where non-empty."""
    tiles, level = [], 0
    while True:
        entries = size >> (HEIGHT * level)
        if entries == 0:
            return tiles
        if entries & (WIDTH - 1):
            tiles.append((level, entries >> HEIGHT))
        level += 1


@dataclass
class Tail:
    """A partition's tree before a batch (its size, the offset after its last leaf, its
    partial tiles) and, after `grow`, what the batch adds. Pure and picklable: the projector
    loads it, grows it beside the fold (in the fold's thread or process) and saves it in the
    batch's transaction (projections/notary/storage.py)."""

    partition: int
    size: int = 0
    next_offset: int | None = None  # None: the tree does not exist yet
    partial: dict[int, bytes] = field(default_factory=dict)  # tile level -> its partial tile's hashes
    out_of_step: str | None = None  # the tree does not end at the batch's checkpoint: not grown, not saved
    # set by grow():
    new_size: int | None = None
    new_next_offset: int | None = None
    tiles: dict[TileId, bytes] = field(default_factory=dict)  # tiles to write (full or partial)
    segments: list[tuple[int, int]] = field(default_factory=list)  # (first offset, first leaf)

    @property
    def grown(self) -> bool:
        return self.new_size is not None and self.new_size != self.size

    def grow(self, records: Iterable[Record]) -> None:
        """Append the records as leaves, in order. Cost per record: its leaf hash, and one
        node hash per 16 / 256 / ... records (a filled tile's root); no I/O."""
        if self.out_of_step:
            return
        rows = {level: [hashes[i:i + HASH_SIZE] for i in range(0, len(hashes), HASH_SIZE)]
                for level, hashes in self.partial.items()}
        leaves = rows.setdefault(0, [])
        size, next_offset, partition = self.size, self.next_offset, self.partition
        for record in records:
            if record.offset != next_offset or record.partition != partition:
                self._jump(record, next_offset, size)
            leaves.append(record_hash(record))
            size, next_offset = size + 1, record.offset + 1
            if len(leaves) == WIDTH:
                self._filled(rows, 0, (size - 1) >> HEIGHT)
                leaves = rows[0]
        for level, row in rows.items():  # the partial tiles that changed, as they ended
            index = (size >> (HEIGHT * level)) >> HEIGHT
            before = len(self.partial.get(level, b"")) // HASH_SIZE
            if row and (index != (self.size >> (HEIGHT * level)) >> HEIGHT or len(row) != before):
                self.tiles[(level, index)] = b"".join(row)
        self.new_size, self.new_next_offset = size, next_offset

    def after(self) -> Tail:
        """The tree as this growth leaves it, as the tail of the next batch (the projector's
        process keeps it, so the next batch reads nothing: projections/notary/storage.py)."""
        size = self.new_size if self.new_size is not None else self.size
        partial = {}
        for level, index in right_edge(size):
            if (level, index) in self.tiles:
                partial[level] = self.tiles[(level, index)]
            else:  # untouched since it was loaded
                partial[level] = self.partial[level]
        next_offset = self.new_next_offset if self.new_size is not None else self.next_offset
        return Tail(self.partition, size, next_offset, partial)

    def _jump(self, record: Record, next_offset: int | None, size: int) -> None:
        """A record not right after the last one: another partition's (refused), one behind
        the tree (refused), or past a gap in the offsets (a new segment)."""
        if record.partition != self.partition:
            raise ValueError(f"record {record.partition}:{record.offset} is not of partition {self.partition}")
        if next_offset is not None and record.offset < next_offset:
            raise ValueError(f"record {record.partition}:{record.offset} is behind the tree ({next_offset})")
        self.segments.append((record.offset, size))

    def _filled(self, rows: dict[int, list[bytes]], level: int, index: int) -> None:
        """Tile (level, index) is full: keep it, and push its root one tile level up."""
        full = b"".join(rows[level])
        self.tiles[(level, index)] = full
        rows[level] = []
        above = rows.setdefault(level + 1, [])
        above.append(node_from_tile(full, 0, WIDTH))
        if len(above) == WIDTH:
            self._filled(rows, level + 1, index >> HEIGHT)


def needed_tiles(ranges: Iterable[Range]) -> set[TileId]:
    """The tiles the hashes of `ranges` (RFC-shaped) are computed from."""
    return {tile_of(node)[0] for lo, hi in ranges for node in complete_nodes(lo, hi)}


def range_hashes(ranges: Iterable[Range], tiles: Mapping[TileId, bytes]) -> dict[Range, bytes]:
    """Each range's hash (MTH of its leaves) from the tiles `needed_tiles` named. Raises
    LookupError when a tile is missing or too short: the tree does not reach that far."""
    nodes: dict[Node, bytes] = {}
    out: dict[Range, bytes] = {}
    for lo, hi in ranges:
        if (lo, hi) in out:
            continue
        values = []
        for node in complete_nodes(lo, hi):
            if node not in nodes:
                tile, first, count = tile_of(node)
                if tile not in tiles:
                    raise LookupError(f"tile {tile} of the tree is missing")
                nodes[node] = node_from_tile(tiles[tile], first, count)
            values.append(nodes[node])
        out[(lo, hi)] = fold_right(values)
    return out


def tail_at(partition: int, size: int, next_offset: int | None, tiles: Mapping[TileId, bytes]) -> Tail:
    """The tail of a stored tree, given (at least) its right-edge tiles."""
    partial = {}
    for level, index in right_edge(size):
        hashes = tiles.get((level, index))
        expected = (size >> (HEIGHT * level)) & (WIDTH - 1)
        if hashes is None or len(hashes) != expected * HASH_SIZE:
            raise LookupError(f"partition {partition}: tile {(level, index)} of the tree does not hold "
                              f"the {expected} hashes its size ({size}) says")
        partial[level] = hashes
    return Tail(partition, size, next_offset, partial)
