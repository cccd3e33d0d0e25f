"""RFC 9162 Merkle trees (Certificate Transparency 2.0; RFC 6962 before it): hashing,
inclusion and consistency proofs, and their verification. Pure: no I/O.

Hashing (RFC 9162 §2.1.1): SHA-256; a leaf's hash is HASH(0x00 || leaf data), an interior
node's HASH(0x01 || left || right); the tree over n > 1 leaves is split at k, the largest
power of two smaller than n, into a complete left subtree of k leaves and the rest.

Proofs are computed as lists of leaf *ranges* [lo, hi): the subtrees whose hashes a proof
carries (§2.1.3.1 PATH, §2.1.4.1 PROOF/SUBPROOF). Where their hashes come from is the
caller's business: from a list of leaves (`range_root`, the reference used by the tests) or
from the stored tiles (projections/notary/tiles.py, a handful of rows). Every range such a
proof names is *RFC-shaped*: it starts at a multiple of a power of two at least as large as
itself, so it is a run of complete subtrees of decreasing size (`complete_nodes`).
Verification follows §2.1.3.2 and §2.1.4.2 step by step.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()  # MTH({}) = HASH()

Range = tuple[int, int]  # [lo, hi) of leaf indexes
Node = tuple[int, int]  # (level, index): the complete subtree of leaves [index << level, (index + 1) << level)


class ProofError(ValueError):
    """A proof that does not verify, with the reason."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(n: int) -> int:
    """k: the largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


# -- from scratch (the reference) -------------------------------------------------------

def range_root(leaf_hashes: Sequence[bytes], lo: int = 0, hi: int | None = None) -> bytes:
    """MTH(D[lo:hi]) from the leaves' hashes, recursively as §2.1.1 defines it."""
    hi = len(leaf_hashes) if hi is None else hi
    if hi == lo:
        return EMPTY_ROOT
    if hi - lo == 1:
        return leaf_hashes[lo]
    k = split(hi - lo)
    return node_hash(range_root(leaf_hashes, lo, lo + k), range_root(leaf_hashes, lo + k, hi))


class Frontier:
    """The root of a growing tree, one leaf at a time, in O(log n) memory: the complete
    subtrees of its right edge (a compact range, biggest first)."""

    def __init__(self) -> None:
        self.size = 0
        self.nodes: list[tuple[int, bytes]] = []  # (level, hash)

    def append(self, leaf: bytes) -> None:
        level, value = 0, leaf
        while self.nodes and self.nodes[-1][0] == level:
            value = node_hash(self.nodes.pop()[1], value)
            level += 1
        self.nodes.append((level, value))
        self.size += 1

    def root(self) -> bytes:
        return fold_right([value for _, value in self.nodes])


def fold_right(hashes: Sequence[bytes]) -> bytes:
    """The hash of an RFC-shaped range from its complete subtrees, biggest first: the tree
    leans left, so the last two join first."""
    if not hashes:
        return EMPTY_ROOT
    value = hashes[-1]
    for left in reversed(hashes[:-1]):
        value = node_hash(left, value)
    return value


def complete_nodes(lo: int, hi: int) -> list[Node]:
    """The complete subtrees that make up the RFC-shaped range [lo, hi), biggest first
    (one per bit of hi - lo)."""
    nodes = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        if lo & ((1 << level) - 1):
            raise ValueError(f"[{lo}, {hi}) is not a range of the RFC 9162 tree shape")
        nodes.append((level, lo >> level))
        lo += 1 << level
    return nodes


# -- proofs as ranges (§2.1.3.1, §2.1.4.1) -------------------------------------------------

def inclusion_ranges(index: int, size: int) -> list[Range]:
    """PATH(index, D[size]): the subtrees whose hashes prove leaf `index`, leaf side first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    path: list[Range] = []
    lo, hi, m = 0, size, index
    while hi - lo > 1:
        k = split(hi - lo)
        if m < k:
            path.append((lo + k, hi))
            hi = lo + k
        else:
            path.append((lo, lo + k))
            lo, m = lo + k, m - k
    return path[::-1]


def consistency_ranges(old: int, new: int) -> list[Range]:
    """PROOF(old, D[new]) = SUBPROOF(old, D[new], true): the subtrees that prove the tree of
    `old` leaves is a prefix of the tree of `new`. Empty when old is 0 or equal to new."""
    if not 0 <= old <= new:
        raise ValueError(f"no consistency proof from size {old} to size {new}")
    if old in (0, new):
        return []
    path: list[Range] = []
    lo, hi, m, whole = 0, new, old, True
    while True:
        n = hi - lo
        if m == n:
            if not whole:
                path.append((lo, hi))
            break
        k = split(n)
        if m <= k:
            path.append((lo + k, hi))
            hi = lo + k
        else:
            path.append((lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    return path[::-1]


# -- verification (§2.1.3.2, §2.1.4.2) --------------------------------------------------

def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root an inclusion proof leads to; raises ProofError when it cannot lead anywhere."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size}")
    _sized(leaf, *proof)
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("the inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the inclusion proof is too short")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Raises ProofError unless `proof` shows `leaf` at `index` in the tree of `size` with `root`."""
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise ProofError(f"leaf {index} is not in the tree of size {size} with this root")


def verify_consistency(old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """Raises ProofError unless `proof` shows the tree (`old`, `old_root`) is a prefix of
    (`new`, `new_root`): the log only grew between the two."""
    if not 0 <= old <= new:
        raise ProofError(f"size {new} is smaller than size {old}: the log shrank")
    _sized(old_root, new_root, *proof)
    if old == new:
        if proof or old_root != new_root:
            raise ProofError(f"two different roots for size {old}")
        return
    if old == 0:
        if proof:
            raise ProofError("a proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError("empty consistency proof")
    path = list(proof)
    if old & (old - 1) == 0:  # an exact power of two: the old tree is a subtree of the new
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the consistency proof is too short")
    if fr != old_root:
        raise ProofError(f"the tree of size {new} does not extend the one of size {old}: its first {old} leaves differ")
    if sr != new_root:
        raise ProofError(f"the consistency proof does not lead to the root of size {new}")


def _sized(*hashes: bytes) -> None:
    for value in hashes:
        if len(value) != HASH_SIZE:
            raise ProofError(f"a hash of {len(value)} bytes, not {HASH_SIZE}")
