"""A log record's bytes in its partition's Merkle tree: the leaf encoding `runledger-leaf/1`.

A leaf is one record exactly as the log holds it: where it is, its key, its value and
the log's time for it. Every field has a fixed width or a length prefix, so no two
different records encode alike, and the version byte lets a later encoding live beside
this one (a tree never mixes them: a new version starts new trees, by rebuild).

    field       bytes   encoding
    version     1       0x01
    partition   4       unsigned, big-endian
    offset      8       unsigned, big-endian
    log time    8       signed, big-endian: the record's append time, ms since the epoch
                        (the embedded log's stamp; Kafka's LogAppendTime)
    key length  4       unsigned, big-endian, then the key as UTF-8 (as the log adapter
                        reads it: a Kafka key that is not UTF-8 is read with U+FFFD, and
                        a record without a key has the empty key)
    value len.  4       unsigned, big-endian, then the value's bytes, exactly as on the log

The leaf's hash is RFC 9162's: SHA-256(0x00 || these bytes) (projections/notary/merkle.py).
"""
from __future__ import annotations

import hashlib
import struct

from events.log import Record
from projections.notary.merkle import leaf_hash

FORMAT = "runledger-leaf/1"
VERSION = 1
_HEAD = struct.Struct(">BIQq")
_LENGTH = struct.Struct(">I")
_HASHED_HEAD = struct.Struct(">BBIQqI")  # RFC 9162's 0x00 prefix, then the head and the key's length


def leaf_bytes(partition: int, offset: int, key: str, value: bytes, timestamp_ms: int) -> bytes:
    key_bytes = key.encode("utf-8", "surrogatepass")
    return b"".join((_HEAD.pack(VERSION, partition, offset, timestamp_ms), _LENGTH.pack(len(key_bytes)),
                     key_bytes, _LENGTH.pack(len(value)), value))


def record_leaf(record: Record) -> bytes:
    return leaf_bytes(record.partition, record.offset, record.key, record.value, record.timestamp_ms)


def record_hash(record: Record) -> bytes:
    """The record's leaf hash: what the tree holds for it. The same bytes as
    `leaf_hash(record_leaf(record))`, packed in one go (the projector hashes every record)."""
    key, value = record.key.encode("utf-8", "surrogatepass"), record.value
    return hashlib.sha256(_HASHED_HEAD.pack(0, VERSION, record.partition, record.offset, record.timestamp_ms, len(key))
                          + key + _LENGTH.pack(len(value)) + value).digest()
