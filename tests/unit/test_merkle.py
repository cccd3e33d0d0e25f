"""RFC 9162 hashing and proofs (projections/notary/merkle.py) against published test
vectors, and the stored tiles against a tree computed from scratch.

The vectors are RFC 6962's reference tree of eight leaves as Certificate Transparency's
and Trillian's test suites carry them (transparency-dev/merkle, proof/verify_test.go and
proof/proof_test.go): the roots of sizes 1..8, inclusion and consistency proofs, and which
stored nodes a proof reads."""
from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings, strategies as st

from events.log import Record
from projections.notary import merkle, tiles
from projections.notary.leaf import record_hash

LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                     "606162636465666768696a6b6c6d6e6f")]
ROOTS = [bytes.fromhex(h) for h in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")]
H = bytes.fromhex
INCLUSION = [  # (leaf index, tree size, proof)
    (0, 8, [H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")]),
    (5, 8, [H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
    (2, 3, [H("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (1, 5, [H("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")]),
]
CONSISTENCY = [  # (old size, new size, proof)
    (1, 1, []),
    (1, 8, [H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")]),
    (6, 8, [H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
    (2, 5, [H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")]),
    (6, 7, [H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            H("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
]
HASHED = [merkle.leaf_hash(leaf) for leaf in LEAVES]


def test_the_roots_of_the_reference_tree():
    assert merkle.range_root([]) == hashlib.sha256(b"").digest() == merkle.EMPTY_ROOT
    assert [merkle.range_root(HASHED[:n]) for n in range(1, 9)] == ROOTS


@pytest.mark.parametrize("index, size, proof", INCLUSION)
def test_inclusion_vectors_are_computed_and_verified(index, size, proof):
    assert [merkle.range_root(HASHED, lo, hi) for lo, hi in merkle.inclusion_ranges(index, size)] == proof
    merkle.verify_inclusion(index, size, HASHED[index], proof, ROOTS[size - 1])


@pytest.mark.parametrize("old, new, proof", CONSISTENCY)
def test_consistency_vectors_are_computed_and_verified(old, new, proof):
    assert [merkle.range_root(HASHED, lo, hi) for lo, hi in merkle.consistency_ranges(old, new)] == proof
    merkle.verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], proof)


def corrupted_inclusions(index, size, proof, root, leaf):
    """transparency-dev's corruptInclusionProof: none of these may verify."""
    some = H("abacaba000000000000000000000000000000000000000000060061e00123456")
    yield index - 1, size, leaf, proof, root
    yield index + 1, size, leaf, proof, root
    yield index ^ 2, size, leaf, proof, root
    yield index, size * 2, leaf, proof, root
    yield index, size // 2, leaf, proof, root
    yield index, size, merkle.leaf_hash(b"WrongLeaf"), proof, root
    yield index, size, leaf, proof, merkle.EMPTY_ROOT
    yield index, size, leaf, proof, some
    yield index, size, leaf, proof + [root], root
    yield index, size, leaf, [root] + proof, root
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([proof[i][0] ^ 8]) + proof[i][1:]
        yield index, size, leaf, flipped, root
    if proof:
        yield index, size, leaf, proof[:-1], root
    if len(proof) > 1:
        yield index, size, leaf, [proof[0], some, *proof[1:]], root


@pytest.mark.parametrize("index, size, proof", INCLUSION)
def test_corrupted_inclusion_proofs_fail(index, size, proof):
    for probe in corrupted_inclusions(index, size, proof, ROOTS[size - 1], HASHED[index]):
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(*probe)


@pytest.mark.parametrize("old, new, proof", [c for c in CONSISTENCY if c[2]])
def test_corrupted_consistency_proofs_fail(old, new, proof):
    r1, r2 = ROOTS[old - 1], ROOTS[new - 1]
    probes = [(old - 1, new, r1, r2, proof), (old + 1, new, r1, r2, proof), (old ^ 2, new, r1, r2, proof),
              (old, new * 2, r1, r2, proof), (old, new // 2, r1, r2, proof), (old, new, r2, r1, proof),
              (old, new, r1, r2, []), (old, new, r1, r2, proof + [r1]), (old, new, r1, r2, [r2] + proof),
              (old, new, r1, r2, proof[:-1])]
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([proof[i][0] ^ 16]) + proof[i][1:]
        probes.append((old, new, r1, r2, flipped))
    for probe in probes:
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(*probe)


def test_trivial_consistency():
    merkle.verify_consistency(0, 0, merkle.EMPTY_ROOT, merkle.EMPTY_ROOT, [])
    merkle.verify_consistency(0, 5, merkle.EMPTY_ROOT, ROOTS[4], [])
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(2, 1, ROOTS[1], ROOTS[0], [])
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(3, 3, ROOTS[2], ROOTS[3], [])


NODE_VECTORS = [  # transparency-dev's proof_test.go: the stored nodes a proof reads (incomplete ones rehashed)
    ("inclusion", 10, 15, {(0, 11), (1, 4), (0, 14), (1, 6), (3, 0)}),
    ("inclusion", 24, 31, {(0, 25), (1, 13), (0, 30), (1, 14), (3, 2), (4, 0)}),
    ("inclusion", 81, 95, {(0, 80), (1, 41), (2, 21), (0, 94), (1, 46), (2, 22), (4, 4), (6, 0)}),
    ("inclusion", 6, 7, {(1, 2), (2, 0)}),
    ("consistency", 10, 15, {(1, 4), (1, 5), (0, 14), (1, 6), (3, 0)}),
    ("consistency", 24, 31, {(3, 2), (0, 30), (1, 14), (2, 6), (4, 0)}),
    ("consistency", 81, 95, {(0, 80), (0, 81), (1, 41), (2, 21), (0, 94), (1, 46), (2, 22), (4, 4), (6, 0)}),
    ("consistency", 3, 7, {(0, 2), (0, 3), (1, 0), (0, 6), (1, 2)}),
]


@pytest.mark.parametrize("kind, a, b, nodes", NODE_VECTORS)
def test_a_proof_reads_the_same_stored_nodes_as_the_reference_implementation(kind, a, b, nodes):
    ranges = merkle.inclusion_ranges(a, b) if kind == "inclusion" else merkle.consistency_ranges(a, b)
    assert {node for lo, hi in ranges for node in merkle.complete_nodes(lo, hi)} == nodes


# -- the stored tree (tiles) against the tree from scratch -------------------------------

def grow_in_batches(records: list[Record], cuts: list[int]) -> tuple[dict, int]:
    """Grow a tree batch by batch as the projector does, keeping its tiles in a dict."""
    store: dict = {}
    size, next_offset = 0, None
    bounds = sorted({0, len(records), *[c % (len(records) + 1) for c in cuts]})
    for start, end in zip(bounds, bounds[1:]):
        tail = tiles.tail_at(0, size, next_offset, store)
        tail.grow(records[start:end])
        store.update(tail.tiles)
        size, next_offset = tail.new_size, tail.new_next_offset
    return store, size


def records_of(n: int, gap_every: int = 0) -> list[Record]:
    out, offset = [], 0
    for i in range(n):
        out.append(Record(0, offset, f"run_{i % 3}", b"v" * (i % 17) + bytes([i % 256]), 1_700_000_000_000 + i))
        offset += 1 + (3 if gap_every and i % gap_every == gap_every - 1 else 0)
    return out


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 700), cuts=st.lists(st.integers(0, 700), max_size=12), data=st.data())
def test_every_proof_from_the_stored_tiles_verifies_and_equals_the_one_from_scratch(n, cuts, data):
    records = records_of(n)
    leaves = [record_hash(r) for r in records]
    store, size = grow_in_batches(records, cuts)
    assert size == n
    for _ in range(8):
        m = data.draw(st.integers(1, n))
        root = merkle.range_root(leaves, 0, m)
        assert tiles.range_hashes([(0, m)], store)[(0, m)] == root
        index = data.draw(st.integers(0, m - 1))
        spans = merkle.inclusion_ranges(index, m)
        stored = tiles.range_hashes(spans, store)
        proof = [stored[s] for s in spans]
        assert proof == [merkle.range_root(leaves, lo, hi) for lo, hi in spans]
        merkle.verify_inclusion(index, m, leaves[index], proof, root)
        old = data.draw(st.integers(0, m))
        spans = merkle.consistency_ranges(old, m)
        stored = tiles.range_hashes(spans, store)
        proof = [stored[s] for s in spans]
        assert proof == [merkle.range_root(leaves, lo, hi) for lo, hi in spans]
        merkle.verify_consistency(old, m, merkle.range_root(leaves, 0, old), root, proof)


def test_tiles_are_the_same_whatever_the_batches():
    records = records_of(1000)
    whole, _ = grow_in_batches(records, [])
    assert grow_in_batches(records, [1, 2, 3, 17, 255, 256, 257, 999]) == (whole, 1000)
    assert len(whole) == 63 + 4 + 1  # 1000 leaves: 63 level-0 tiles, 4 of level 1 (62 entries), 1 of level 2


def test_a_jump_in_offsets_starts_a_segment():
    records = records_of(40, gap_every=10)
    tail = tiles.Tail(0)
    tail.grow(records)
    assert tail.segments == [(0, 0), (13, 10), (26, 20), (39, 30)]
    assert tail.new_next_offset == records[-1].offset + 1


def test_the_frontier_gives_the_root_of_every_size():
    frontier = merkle.Frontier()
    for n, leaf in enumerate(HASHED, start=1):
        frontier.append(leaf)
        assert frontier.root() == ROOTS[n - 1]
