"""The leaf encoding, signed heads, and the two documents an auditor keeps (a digest, a
run's proof bundle), checked offline: what passes, and what fails and where."""
from __future__ import annotations

import copy

import pytest

from events.log import Record
from projections.notary import bundle, merkle
from projections.notary.heads import BadDocument, SignedHead, Signer, TreeHead, b64, parse_public_key, verify
from projections.notary.leaf import leaf_bytes, record_hash

SIGNER, OTHER = Signer.generate(), Signer.generate()


def test_the_leaf_encoding_is_fixed_and_unambiguous():
    assert leaf_bytes(3, 17, "run_1", b'{"a":1}', 1_700_000_000_123) == (
        b"\x01" + (3).to_bytes(4, "big") + (17).to_bytes(8, "big") + (1_700_000_000_123).to_bytes(8, "big")
        + (5).to_bytes(4, "big") + b"run_1" + (7).to_bytes(4, "big") + b'{"a":1}')
    # Moving a byte between key and value changes the leaf: lengths are part of it.
    assert leaf_bytes(0, 0, "ab", b"c", 0) != leaf_bytes(0, 0, "a", b"bc", 0)
    base = Record(0, 5, "k", b"v", 10)
    for changed in (Record(1, 5, "k", b"v", 10), Record(0, 6, "k", b"v", 10), Record(0, 5, "K", b"v", 10),
                    Record(0, 5, "k", b"w", 10), Record(0, 5, "k", b"v", 11)):
        assert record_hash(changed) != record_hash(base)


def test_a_head_is_signed_and_any_change_breaks_its_signature():
    signed = SIGNER.sign(TreeHead(2, 10, merkle.leaf_hash(b"x"), 1_700_000_000_000))
    assert verify(SIGNER.public_key, signed)
    assert SignedHead.from_json(signed.as_json()) == signed
    for head in (TreeHead(3, 10, signed.head.root, signed.head.time_ms), TreeHead(2, 11, signed.head.root, 0),
                 TreeHead(2, 10, merkle.EMPTY_ROOT, signed.head.time_ms)):
        assert not verify(SIGNER.public_key, SignedHead(head, signed.signature))
    assert not verify(OTHER.public_key, signed)


def test_keys_round_trip_as_pem_and_base64():
    again = Signer.from_pem(SIGNER.pem())
    assert again.public_key == SIGNER.public_key and again.key_id == SIGNER.key_id and len(SIGNER.key_id) == 16
    assert parse_public_key(b64(SIGNER.public_key)) == SIGNER.public_key
    with pytest.raises(BadDocument):
        parse_public_key("not a key")


# -- a small ledger: one partition, two runs interleaved ------------------------------------

def partition_records(n: int, run: str = "run_a") -> list[Record]:
    return [Record(4, i, run if i % 3 else "run_b", f'{{"i":{i}}}'.encode(), 1_700_000_000_000 + i) for i in range(n)]


def head_at(records: list[Record], size: int, signer: Signer = SIGNER) -> SignedHead:
    leaves = [record_hash(r) for r in records[:size]]
    return signer.sign(TreeHead(4, size, merkle.range_root(leaves), 1_700_000_000_000 + size))


def digest_at(records, size, since: int | None = None, signer: Signer = SIGNER) -> dict:
    proofs = []
    if since is not None:
        leaves = [record_hash(r) for r in records[:size]]
        path = tuple(merkle.range_root(leaves, lo, hi) for lo, hi in merkle.consistency_ranges(since, size))
        proofs.append(bundle.Consistency(4, since, size, path))
    return bundle.digest_document(signer.public_key, signer.key_id, [head_at(records, size, signer)], proofs)


def bundle_at(records, size, run="run_a", since: int | None = None) -> dict:
    leaves = [record_hash(r) for r in records[:size]]
    mine = [(r, r.offset) for r in records[:size] if r.key == run]
    hashes = {(4, span): merkle.range_root(leaves, *span) for r, leaf in mine
              for span in merkle.inclusion_ranges(leaf, size)}
    proofs = digest_at(records, size, since)["consistency"] if since is not None else []
    document = bundle.bundle_document(run, "org_a", SIGNER.public_key, SIGNER.key_id, [head_at(records, size)],
                                      mine, hashes)
    document["consistency"] = proofs
    return document


def test_a_bundle_checks_offline_and_names_the_first_edited_record():
    records = partition_records(50)
    document = bundle_at(records, 50)
    outcome = bundle.check(document, public_key=SIGNER.public_key)
    assert outcome.ok and outcome.records == len(document["records"]) == 33 and not outcome.warnings
    assert len(document["hashes"]) < sum(len(r["proof"]) for r in document["records"])  # shared paths, kept once

    edited = copy.deepcopy(document)
    edited["records"][7]["value"] = b64(b'{"i":999}')
    outcome = bundle.check(edited, public_key=SIGNER.public_key)
    assert not outcome.ok and outcome.position == edited["records"][7]["position"] == "4:11"
    assert outcome.failure.startswith("record 4:11: not in the log signed at")

    for field, value in (("timestamp_ms", 5), ("offset", 11), ("key", "run_b")):
        moved = copy.deepcopy(document)
        moved["records"][3][field] = value
        outcome = bundle.check(moved, public_key=SIGNER.public_key)
        assert not outcome.ok and outcome.position.startswith("4:"), field


def test_a_bundle_signed_by_another_key_fails_against_the_trusted_one():
    records = partition_records(20)
    forged = bundle_at(records, 20)
    forged["public_key"] = b64(OTHER.public_key)
    forged["heads"] = [head_at(records, 20, OTHER).as_json()]
    assert bundle.check(forged).ok  # intact, but by whom: said in a warning
    assert "pin the ledger's key" in bundle.check(forged).warnings[0]
    outcome = bundle.check(forged, public_key=SIGNER.public_key)
    assert not outcome.ok and "another key" in outcome.failure
    outcome = bundle.check(forged, older=digest_at(records, 10))  # the older digest's key is trusted
    assert not outcome.ok and "another key" in outcome.failure


def test_a_later_bundle_is_proven_to_extend_an_older_digest():
    records = partition_records(60)
    older = digest_at(records, 37)
    assert bundle.check(bundle_at(records, 60, since=37), older=older, public_key=SIGNER.public_key).ok
    without = bundle.check(bundle_at(records, 60), older=older, public_key=SIGNER.public_key)
    assert not without.ok and "no consistency proof from size 37" in without.failure

    rewritten = list(records)
    rewritten[12] = Record(4, 12, records[12].key, b'{"i":"rewritten"}', records[12].timestamp_ms)
    outcome = bundle.check(bundle_at(rewritten, 60, since=37), older=older, public_key=SIGNER.public_key)
    assert not outcome.ok and "is not the one of the older digest" in outcome.failure
    assert bundle.check(bundle_at(rewritten, 60, since=37), public_key=SIGNER.public_key).ok  # alone, it is intact


def test_digests_are_checked_against_each_other():
    records = partition_records(80)
    older = digest_at(records, 30)
    assert bundle.check(digest_at(records, 80, since=30), older=older).ok
    assert bundle.check(digest_at(records, 30), older=older).ok  # nothing grew
    shrunk = bundle.check(digest_at(records, 20), older=older)
    assert not shrunk.ok and "shrank" in shrunk.failure
    rewritten = list(records)
    rewritten[3] = Record(4, 3, "run_b", b"{}", records[3].timestamp_ms)
    assert not bundle.check(digest_at(rewritten, 80, since=30), older=older).ok


def test_malformed_documents_are_refused_not_crashed_on():
    for document in ({}, {"format": "runledger-proof/1"}, {"format": "other"}, [],
                     {"format": "runledger-digest/1", "algorithm": "ed25519", "public_key": "AAAA", "heads": []}):
        outcome = bundle.check(document)
        assert not outcome.ok and outcome.failure.startswith("malformed")
