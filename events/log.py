"""The EventLog port: Kafka semantics (partitions, offsets, keys) for every backend.

All events of one key land in one partition, in append order; a position is
(partition, offset). Adapters: `events.sqlite_log` (embedded) and `events.kafka_log`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable, Iterable, Protocol, Sequence


@dataclass(frozen=True, slots=True)
class Message:
    key: str
    value: bytes


@dataclass(frozen=True, slots=True, order=True)
class Position:
    partition: int
    offset: int

    def token(self) -> str:
        return f"{self.partition}:{self.offset}"

    @classmethod
    def parse(cls, token: str) -> Position:
        partition, _, offset = token.partition(":")
        try:
            return cls(int(partition), int(offset))
        except ValueError:
            raise ValueError(f"bad position token {token!r}, expected '<partition>:<offset>'") from None


@dataclass(frozen=True, slots=True)
class Record:
    partition: int
    offset: int
    key: str
    value: bytes
    timestamp_ms: int

    @property
    def position(self) -> Position:
        return Position(self.partition, self.offset)


OnPartitions = Callable[[set[int]], Awaitable[None]]


class LogUnavailable(Exception):
    """The log did not do what was asked within its bound (a broker away, a SQLite file
    locked by another process). For an append the outcome may be unknown: a Kafka send
    that timed out can still land, so a retry must append the same events (their ids
    make the second copy a duplicate the fold refuses). Transient: retried by projectors,
    503 `unavailable` over HTTP."""

    transient = True

    def __init__(self, dependency: str, message: str):
        super().__init__(message)
        self.dependency = dependency


class LogConsumer(Protocol):
    """Reads records from assigned partitions, in offset order within each partition."""

    def assign(self, partitions: Iterable[int]) -> None:
        """Manual assignment; each partition starts at offset 0 until `seek`."""

    async def subscribe(self, group: str, on_assigned: OnPartitions, on_revoked: OnPartitions) -> None:
        """Join a consumer group. `on_assigned` runs before any fetch of the new
        partitions (seek there); `on_revoked` runs before they are taken away."""

    def seek(self, partition: int, offset: int) -> None: ...

    def assignment(self) -> set[int]: ...

    async def poll(self, timeout: float, max_records: int = 500) -> list[Record]:
        """Return what is available now, or wait up to `timeout` seconds for new
        records; wakes as soon as records arrive. Empty list on timeout."""

    async def close(self) -> None: ...


class EventLog(Protocol):
    """An append-only, partitioned log of keyed byte records."""

    @property
    def partitions(self) -> int: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def append(self, messages: Sequence[Message]) -> list[Position]:
        """Append in order; returns one position per message once the write is durable."""

    async def read(self, partition: int, from_offset: int, max_records: int = 500) -> list[Record]: ...

    async def end_offsets(self) -> dict[int, int]:
        """Next offset to be written, per partition."""

    def consumer(self) -> LogConsumer: ...



NEARBY = 100
"""`read_at` reads two wanted offsets this close (or closer) in one go..."""
READ_AT_MOST = 2_000
"""... in stretches spanning at most this many offsets (a partition's records are shared by
many aggregates, so a run's records lie among others')."""


async def read_at(log: EventLog, partition: int, offsets: Iterable[int]) -> dict[int, Record]:
    """The records at `offsets` of one partition (those the log has), one `EventLog.read` per
    stretch of nearby offsets (more only when a read stops early, at the adapter's byte
    limit): at most NEARBY records read in vain per record wanted."""
    wanted = sorted(set(offsets))
    found: dict[int, Record] = {}
    i = 0
    while i < len(wanted):
        j = i
        while j + 1 < len(wanted) and wanted[j + 1] - wanted[j] <= NEARBY and wanted[j + 1] - wanted[i] < READ_AT_MOST:
            j += 1
        want, at, last = set(wanted[i:j + 1]), wanted[i], wanted[j]
        while at <= last:
            got = await log.read(partition, at, last - at + 1)
            if not got:
                break
            found.update((r.offset, r) for r in got if r.offset in want)
            at = got[-1].offset + 1
        i = j + 1
    return found

def partition_for(key: str, partitions: int) -> int:
    """Kafka's default partitioner (murmur2 of the key bytes), so every adapter and
    any foreign Kafka producer put a key in the same partition."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def murmur2(data: bytes) -> int:
    m, r, mask = 0x5BD1E995, 24, 0xFFFFFFFF
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & mask
        k ^= k >> r
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    tail = length & ~3
    extra = length % 4
    if extra == 3:
        h ^= data[tail + 2] << 16
    if extra >= 2:
        h ^= data[tail + 1] << 8
    if extra >= 1:
        h ^= data[tail]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h
