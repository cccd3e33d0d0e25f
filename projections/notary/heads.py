"""Signed tree heads: a partition's tree size and root at a time, signed with Ed25519.

The signed message (UTF-8 text, one field per line, `\n`-terminated):

    runledger-tree-head/1
    partition <p>
    size <n>
    root <root hash, base64>
    time <ms since the epoch>

A head says "partition p's log had n records, whose Merkle tree (RFC 9162) has this root,
at this time". A *digest* is the signed heads of every partition: what an auditor keeps.
The key id is the first 16 hex digits of SHA-256("runledger-ed25519:" || the raw public key).
Pure: signing and verifying only (cryptography's Ed25519); where the key lives is
projections/notary/keys.py.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALGORITHM = "ed25519"
HEAD_FORMAT = "runledger-tree-head/1"


class BadDocument(ValueError):
    """A digest, bundle or key that is not what it says (malformed, wrong format)."""


@dataclass(frozen=True)
class TreeHead:
    partition: int
    size: int
    root: bytes
    time_ms: int

    def message(self) -> bytes:
        return (f"{HEAD_FORMAT}\npartition {self.partition}\nsize {self.size}\nroot {b64(self.root)}\n"
                f"time {self.time_ms}\n").encode()


@dataclass(frozen=True)
class SignedHead:
    head: TreeHead
    signature: bytes

    def as_json(self) -> dict[str, Any]:
        h = self.head
        return {"partition": h.partition, "size": h.size, "root": b64(h.root), "time_ms": h.time_ms,
                "time": iso_time(h.time_ms), "signature": b64(self.signature)}

    @classmethod
    def from_json(cls, value: Any) -> SignedHead:
        try:
            head = TreeHead(_int(value["partition"]), _int(value["size"]), unb64(value["root"], 32),
                            _int(value["time_ms"], signed=True))
            return cls(head, unb64(value["signature"], 64))
        except (KeyError, TypeError) as exc:
            raise BadDocument(f"a signed head without its {exc}") from None


class Signer:
    """Signs tree heads with one Ed25519 private key."""

    def __init__(self, private_key: Ed25519PrivateKey):
        self._key = private_key
        self.public_key = public_bytes(private_key.public_key())
        self.key_id = key_id(self.public_key)

    @classmethod
    def generate(cls) -> Signer:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, pem: bytes) -> Signer:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise BadDocument(f"not a PEM private key: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise BadDocument(f"the signing key must be Ed25519, not {type(key).__name__}")
        return cls(key)

    def pem(self) -> bytes:
        return self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())

    def sign(self, head: TreeHead) -> SignedHead:
        return SignedHead(head, self._key.sign(head.message()))


def verify(public_key: bytes, signed: SignedHead) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signed.signature, signed.head.message())
    except (InvalidSignature, ValueError):
        return False
    return True


def public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: bytes) -> str:
    return hashlib.sha256(b"runledger-ed25519:" + public_key).hexdigest()[:16]


def parse_public_key(text: str) -> bytes:
    """A public key as `runledger audit public-key` prints it (base64 of the 32 raw bytes),
    or a PEM `PUBLIC KEY` block."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode())
        except ValueError as exc:
            raise BadDocument(f"not a PEM public key: {exc}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise BadDocument("the public key is not Ed25519")
        return public_bytes(key)
    return unb64(text, 32)


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def unb64(value: Any, length: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise BadDocument(f"expected base64 text, found {type(value).__name__}")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadDocument(f"not base64: {value[:40]!r}") from None
    if length is not None and len(raw) != length:
        raise BadDocument(f"expected {length} bytes, found {len(raw)}")
    return raw


def iso_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _int(value: Any, signed: bool = False) -> int:
    if type(value) is not int or (value < 0 and not signed):
        raise BadDocument(f"expected a{'n' if signed else ' non-negative'} integer, found {value!r}")
    return value
