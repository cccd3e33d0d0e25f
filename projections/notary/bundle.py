"""The two documents an auditor keeps, and their offline check. Pure: no I/O.

A **digest** (`runledger-digest/1`) is the signed heads of every partition, and the key
that signed them. Taken with `--since OLDER` it also carries, per partition, the
consistency proof from the older digest's size to its own.

A **proof bundle** (`runledger-proof/1`) is one run's records exactly as the log holds
them (base64 values), the signed head of their partition, the public key, and for each
record the RFC 9162 inclusion proof of its leaf against that head: the proof's hashes are
kept once in `hashes` and each record lists their indexes (records of one run share most
of their paths). Exported with `--since OLDER`, it carries the consistency proofs too.

`check(document, older, public_key)` verifies either offline: every head's signature; for a
bundle, every record's inclusion, the first failure named by its position `p:o`; given an
older digest, that each partition's log only grew since (a consistency proof from the
older size, or equal roots at equal sizes).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from events.log import Record
from projections.notary import merkle
from projections.notary.heads import ALGORITHM, BadDocument, SignedHead, b64, iso_time, unb64, verify
from projections.notary.leaf import FORMAT as LEAF_FORMAT, leaf_bytes

DIGEST_FORMAT = "runledger-digest/1"
BUNDLE_FORMAT = "runledger-proof/1"


@dataclass(frozen=True)
class Consistency:
    partition: int
    from_size: int
    to_size: int
    proof: tuple[bytes, ...]

    def as_json(self) -> dict[str, Any]:
        return {"partition": self.partition, "from_size": self.from_size, "to_size": self.to_size,
                "proof": [b64(h) for h in self.proof]}


def digest_document(public_key: bytes, key_id: str, heads: Sequence[SignedHead],
                    consistency: Iterable[Consistency] = ()) -> dict[str, Any]:
    return {"format": DIGEST_FORMAT, "algorithm": ALGORITHM, "key_id": key_id, "public_key": b64(public_key),
            "heads": [h.as_json() for h in heads], "consistency": [c.as_json() for c in consistency]}


def bundle_document(run_id: str, org_id: str, public_key: bytes, key_id: str, heads: Sequence[SignedHead],
                    records: Sequence[tuple[Record, int]], hashes: dict[tuple[int, merkle.Range], bytes],
                    consistency: Iterable[Consistency] = (), missing: Sequence[dict] = ()) -> dict[str, Any]:
    """`records`: each with its leaf index; `hashes`: every (partition, range) their
    inclusion proofs against `heads` name (projections/notary/proofs.py reads them);
    `missing`: positions the run's history lists that could not be proven, with why."""
    size = {h.head.partition: h.head.size for h in heads}
    table: dict[tuple[int, merkle.Range], int] = {}
    out = []
    for record, leaf in records:
        path = []
        for span in merkle.inclusion_ranges(leaf, size[record.partition]):
            path.append(table.setdefault((record.partition, span), len(table)))
        out.append({"position": record.position.token(), "partition": record.partition, "offset": record.offset,
                    "leaf": leaf, "key": record.key, "timestamp_ms": record.timestamp_ms,
                    "value": b64(record.value), "proof": path})
    return {"format": BUNDLE_FORMAT, "leaf_format": LEAF_FORMAT, "run_id": run_id, "org_id": org_id,
            "algorithm": ALGORITHM, "key_id": key_id, "public_key": b64(public_key),
            "heads": [h.as_json() for h in heads], "consistency": [c.as_json() for c in consistency],
            "hashes": [b64(hashes[key]) for key in table], "records": out, "missing": list(missing)}


# -- the offline check --------------------------------------------------------------------

@dataclass
class Outcome:
    ok: bool = True
    kind: str = ""  # "proof" | "digest"
    proven: list[str] = field(default_factory=list)  # what was shown, line by line
    warnings: list[str] = field(default_factory=list)
    failure: str | None = None
    position: str | None = None  # the first bad record, `p:o`
    records: int = 0

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class _Failed(Exception):
    def __init__(self, message: str, position: str | None = None):
        super().__init__(message)
        self.position = position


def check(document: Any, older: Any = None, public_key: bytes | None = None) -> Outcome:
    """Verify a bundle or a digest (and, given `older`, that the log only grew since it).
    `public_key`: the key the auditor trusts; without it the older digest's, else the
    document's own (said in a warning: anyone can sign a forgery with their own key)."""
    outcome = Outcome()
    try:
        _check(document, older, public_key, outcome)
    except _Failed as failed:
        outcome.ok, outcome.failure, outcome.position = False, str(failed), failed.position
    except BadDocument as bad:
        outcome.ok, outcome.failure = False, f"malformed: {bad}"
    return outcome


def _check(document: Any, older: Any, trusted: bytes | None, outcome: Outcome) -> None:
    kind = _kind(document)
    outcome.kind = "proof" if kind == BUNDLE_FORMAT else "digest"
    key = _trusted_key(document, older, trusted, outcome)
    heads = _heads(document, key, "this " + outcome.kind)
    for head in heads.values():
        outcome.proven.append(f"partition {head.partition}: {head.size} records, root {b64(head.root)}, "
                              f"signed at {iso_time(head.time_ms)} by key {document['key_id']}")
    if kind == BUNDLE_FORMAT:
        _check_records(document, heads, outcome)
    if older is not None:
        if _kind(older) != DIGEST_FORMAT:
            raise BadDocument("--digest must be a digest (runledger audit digest), not a proof bundle")
        _check_grown(document, _heads(older, key, "the older digest"), heads, outcome)


def _kind(document: Any) -> str:
    if not isinstance(document, dict) or document.get("format") not in (DIGEST_FORMAT, BUNDLE_FORMAT):
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise BadDocument(f"not a runledger digest or proof bundle (format {found!r})")
    if document.get("algorithm") != ALGORITHM:
        raise BadDocument(f"unknown signature algorithm {document.get('algorithm')!r}")
    return document["format"]


def _trusted_key(document: dict, older: Any, trusted: bytes | None, outcome: Outcome) -> bytes:
    own = unb64(document.get("public_key"), 32)
    if trusted is None and isinstance(older, dict) and "public_key" in older:
        trusted = unb64(older["public_key"], 32)
        outcome.warnings.append("the public key was taken from the older digest; pin it with --public-key")
    if trusted is None:
        outcome.warnings.append("the public key was taken from the document itself, so this shows it is intact, "
                                "not who signed it; pin the ledger's key with --public-key")
        return own
    if own != trusted:
        raise _Failed(f"signed with another key ({b64(own)}) than the one trusted ({b64(trusted)})")
    return trusted


def _heads(document: dict, key: bytes, where: str) -> dict[int, Any]:
    heads: dict[int, Any] = {}
    for value in document.get("heads") or ():
        signed = SignedHead.from_json(value)
        if not verify(key, signed):
            raise _Failed(f"partition {signed.head.partition}: the head in {where} is not signed by the trusted key")
        if signed.head.partition in heads:
            raise _Failed(f"partition {signed.head.partition}: two heads in {where}")
        heads[signed.head.partition] = signed.head
    if not heads:
        raise BadDocument(f"{where} carries no signed head")
    return heads


def _check_records(document: dict, heads: dict, outcome: Outcome) -> None:
    hashes = [unb64(h, merkle.HASH_SIZE) for h in document.get("hashes") or ()]
    run_id = document.get("run_id")
    for gap in document.get("missing") or ():
        position = gap.get("position") if isinstance(gap, dict) else None
        raise _Failed(f"record {position}: in the run's history but {gap.get('reason', 'not proven')}", position)
    for value in document.get("records") or ():
        record, leaf, proof = _record(value, hashes)
        position = record.position.token()
        head = heads.get(record.partition)
        if head is None:
            raise _Failed(f"record {position}: no signed head for partition {record.partition}", position)
        if record.key != run_id:
            raise _Failed(f"record {position} is keyed {record.key!r}, not run {run_id!r}", position)
        try:
            merkle.verify_inclusion(leaf, head.size, merkle.leaf_hash(_leaf(record)), proof, head.root)
        except merkle.ProofError as exc:
            raise _Failed(f"record {position}: not in the log signed at {iso_time(head.time_ms)} ({exc}): "
                          f"its bytes, time or position differ from what the log held", position) from None
        outcome.records += 1
    outcome.proven.append(f"{outcome.records} records of run {run_id}, each included in its partition's signed head")


def _record(value: Any, hashes: list[bytes]) -> tuple[Record, int, list[bytes]]:
    try:
        record = Record(_nat(value["partition"]), _nat(value["offset"]), value["key"], unb64(value["value"]),
                        value["timestamp_ms"])
        leaf, path = _nat(value["leaf"]), [hashes[_nat(i)] for i in value["proof"]]
    except (KeyError, TypeError, IndexError) as exc:
        raise BadDocument(f"a record without a usable {exc}") from None
    if not isinstance(record.key, str) or type(record.timestamp_ms) is not int:
        raise BadDocument(f"record {record.position.token()}: a key must be text and a time an integer")
    return record, leaf, path


def _leaf(record: Record) -> bytes:
    return leaf_bytes(record.partition, record.offset, record.key, record.value, record.timestamp_ms)


def _check_grown(document: dict, older: dict[int, Any], newer: dict[int, Any], outcome: Outcome) -> None:
    proofs = {}
    for value in document.get("consistency") or ():
        try:
            c = Consistency(_nat(value["partition"]), _nat(value["from_size"]), _nat(value["to_size"]),
                            tuple(unb64(h, merkle.HASH_SIZE) for h in value["proof"]))
        except (KeyError, TypeError) as exc:
            raise BadDocument(f"a consistency proof without its {exc}") from None
        proofs[(c.partition, c.from_size, c.to_size)] = c.proof
    if outcome.kind == "digest":
        for partition in sorted(set(older) - set(newer)):
            raise _Failed(f"partition {partition} is in the older digest but not in this one")
    for partition in sorted(set(older) & set(newer)):
        old, new = older[partition], newer[partition]
        proof = proofs.get((partition, old.size, new.size), ())
        if old.size > new.size:
            raise _Failed(f"partition {partition}: the log shrank from {old.size} records to {new.size}")
        if old.size not in (0, new.size) and not proof:
            raise _Failed(f"partition {partition}: no consistency proof from size {old.size} to {new.size} "
                          f"(export with --since the older digest)")
        try:
            merkle.verify_consistency(old.size, new.size, old.root, new.root, proof)
        except merkle.ProofError as exc:
            raise _Failed(f"partition {partition}: the log signed at {iso_time(new.time_ms)} is not the one of "
                          f"the older digest ({iso_time(old.time_ms)}) grown: {exc}") from None
        outcome.proven.append(f"partition {partition}: only grew from {old.size} records "
                              f"({iso_time(old.time_ms)}) to {new.size}")


def _nat(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise BadDocument(f"expected a non-negative integer, found {value!r}")
    return value
