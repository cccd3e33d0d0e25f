"""Embedded EventLog: an append-only SQLite table with Kafka's partitioning.

Appends run in one IMMEDIATE transaction (so several processes may share the
file) with synchronous=FULL, so a returned position survives a crash. Consumers
in this process wake on append; appends by other processes are noticed within
`cross_process_poll` seconds.

Consumer groups live in the same file (see `events.sqlite_groups`).
"""
from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Sequence

from . import sqlite_groups as groups
from .log import LogUnavailable, Message, OnPartitions, Position, Record, partition_for

READ_MAX_BYTES = 16 * 1024 * 1024
"""One read returns records until their values reach this many bytes (at least one)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    partition INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    PRIMARY KEY (partition, "offset")
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class SqliteEventLog:
    def __init__(self, path: str | Path, partitions: int = 6, cross_process_poll: float = 0.2,
                 busy_timeout: float = 5.0):
        self._path = str(path)
        self._busy_timeout = busy_timeout  # seconds a write waits for another process's lock
        self._requested = partitions
        self._partitions = partitions
        self._poll = cross_process_poll
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="rl-log-w")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="rl-log-r")
        self._wconn: sqlite3.Connection | None = None
        self._rconn: sqlite3.Connection | None = None
        self._appended: asyncio.Condition | None = None
        self.generation = 0

    @property
    def partitions(self) -> int:
        return self._partitions

    async def start(self) -> None:
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        self._appended = asyncio.Condition()
        self._wconn = await self._on(self._writer, self._open_writer)
        self._rconn = await self._on(self._reader, self._connect)

    async def close(self) -> None:
        for pool, conn in ((self._writer, self._wconn), (self._reader, self._rconn)):
            if conn is not None:
                await self._on(pool, conn.close)
            pool.shutdown(wait=True)
        self._wconn = self._rconn = None

    async def append(self, messages: Sequence[Message]) -> list[Position]:
        if not messages:
            return []
        try:
            positions = await self._on(self._writer, self._append_sync, list(messages))
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            raise LogUnavailable("SQLite", f"the embedded log ({self._path}) stayed locked by another connection "
                                           f"for {self._busy_timeout:g}s; nothing was appended") from exc
        async with self._appended:
            self.generation += 1
            self._appended.notify_all()
        return positions

    async def read(self, partition: int, from_offset: int, max_records: int = 500) -> list[Record]:
        self._check_partition(partition)
        return await self._on(self._reader, self._read_sync, partition, from_offset, max_records)

    async def end_offsets(self) -> dict[int, int]:
        return await self._on(self._reader, self._end_offsets_sync)

    def consumer(self, heartbeat: float = 1.0, session_timeout: float = 6.0) -> SqliteConsumer:
        return SqliteConsumer(self, heartbeat, session_timeout)

    async def group_claims(self, group: str) -> dict[str, set[int]]:
        """The members of a consumer group and the partitions each consumes now."""
        query = 'SELECT member_id, claimed FROM group_members WHERE "group" = ?'
        rows = await self._on(self._reader, lambda: self._rconn.execute(query, (group,)).fetchall())
        return {member: groups.parse_claims(claimed) for member, claimed in rows}

    async def wait_for_append(self, seen: int, timeout: float) -> None:
        """Return once an in-process append happened after generation `seen`, or
        after `timeout` (capped by the cross-process poll interval)."""
        async with self._appended:
            try:
                changed = lambda: self.generation != seen  # noqa: E731
                await asyncio.wait_for(self._appended.wait_for(changed), min(timeout, self._poll))
            except asyncio.TimeoutError:
                pass

    # -- blocking parts, each run on its own thread --------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False, timeout=self._busy_timeout)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def _open_writer(self) -> sqlite3.Connection:
        conn = self._connect()
        conn.executescript(_SCHEMA + groups.SCHEMA)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT OR IGNORE INTO log_meta VALUES ('partitions', ?)", (str(self._requested),)
        )
        stored = conn.execute("SELECT value FROM log_meta WHERE name='partitions'").fetchone()[0]
        conn.execute("COMMIT")
        # The partition count is part of the data: changing it would move keys.
        self._partitions = int(stored)
        return conn

    def _append_sync(self, messages: list[Message]) -> list[Position]:
        conn = self._wconn
        now = int(time.time() * 1000)
        conn.execute("BEGIN IMMEDIATE")
        try:
            ends: dict[int, int] = {}
            rows, positions = [], []
            for message in messages:
                partition = partition_for(message.key, self._partitions)
                if partition not in ends:
                    ends[partition] = self._next_offset(conn, partition)
                offset = ends[partition]
                ends[partition] = offset + 1
                rows.append((partition, offset, message.key, message.value, now))
                positions.append(Position(partition, offset))
            conn.executemany('INSERT INTO log VALUES (?, ?, ?, ?, ?)', rows)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled it back itself (SQLITE_FULL does)
                conn.execute("ROLLBACK")
            raise
        return positions

    @staticmethod
    def _next_offset(conn: sqlite3.Connection, partition: int) -> int:
        row = conn.execute('SELECT MAX("offset") FROM log WHERE partition = ?', (partition,)).fetchone()
        return 0 if row[0] is None else row[0] + 1

    def _read_sync(self, partition: int, from_offset: int, limit: int) -> list[Record]:
        """Up to `limit` records, and no more than READ_MAX_BYTES of values beyond the first
        (rows are stepped one at a time, so a run of the largest records a producer may
        write cannot make one read hold `limit` of them: Kafka's fetches are bounded the same way)."""
        rows = self._rconn.execute(
            'SELECT partition, "offset", key, value, timestamp_ms FROM log'
            ' WHERE partition = ? AND "offset" >= ? ORDER BY "offset" LIMIT ?',
            (partition, from_offset, limit),
        )
        records, size = [], 0
        for p, o, k, v, t in rows:
            records.append(Record(p, o, k, bytes(v), t))
            size += len(v)
            if size >= READ_MAX_BYTES:
                break
        rows.close()
        return records

    def _end_offsets_sync(self) -> dict[int, int]:
        ends = {p: 0 for p in range(self._partitions)}
        query = 'SELECT partition, MAX("offset") FROM log GROUP BY partition'
        for partition, last in self._rconn.execute(query):
            ends[partition] = last + 1
        return ends

    async def on_writer(self, fn, *args):
        """Run `fn(writer_connection, *args)` on the writer thread (consumer groups write)."""
        return await self._on(self._writer, fn, self._wconn, *args)

    def _check_partition(self, partition: int) -> None:
        if not 0 <= partition < self._partitions:
            raise ValueError(f"partition {partition} out of range 0..{self._partitions - 1}")

    @staticmethod
    async def _on(pool: ThreadPoolExecutor, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)


class SqliteConsumer:
    """A consumer; with `subscribe`, a member of a consumer group shared by every
    process using the file. A lone member owns every partition."""

    def __init__(self, log: SqliteEventLog, heartbeat: float = 1.0, session_timeout: float = 6.0):
        self._log = log
        self._heartbeat = heartbeat
        self._session_ms = int(session_timeout * 1000)
        self._positions: dict[int, int] = {}
        self._group: str | None = None
        self._member = uuid.uuid4().hex
        self._on_assigned: OnPartitions | None = None
        self._on_revoked: OnPartitions | None = None
        self._next_check = 0.0
        self._beating: asyncio.Task | None = None

    def assign(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self._log._check_partition(partition)
        self._positions = {p: 0 for p in partitions}

    async def subscribe(self, group: str, on_assigned: OnPartitions, on_revoked: OnPartitions) -> None:
        self._group, self._on_assigned, self._on_revoked = group, on_assigned, on_revoked
        self._positions = {}
        await self._rebalance()
        self._beating = asyncio.create_task(self._beat())

    def seek(self, partition: int, offset: int) -> None:
        if partition not in self._positions:
            raise ValueError(f"partition {partition} is not assigned")
        self._positions[partition] = offset

    def assignment(self) -> set[int]:
        return set(self._positions)

    async def poll(self, timeout: float, max_records: int = 500) -> list[Record]:
        deadline = time.monotonic() + timeout
        while True:
            if self._group is not None and time.monotonic() >= self._next_check:
                await self._rebalance()
            seen = self._log.generation
            records = await self._fetch(max_records)
            remaining = deadline - time.monotonic()
            if records or remaining <= 0:
                return records
            await self._log.wait_for_append(seen, remaining)

    async def _rebalance(self) -> None:
        """Revoke what this member should no longer consume, then take what is free of its range."""
        log, group = self._log, self._group
        self._next_check = time.monotonic() + self._heartbeat
        mine, taken = await log.on_writer(groups.membership, group, self._member, self._session_ms, log.partitions)
        current = set(self._positions)
        lost = current - mine | current & taken
        wanted = mine - taken - current
        if lost:
            await self._on_revoked(lost)
            for partition in lost:
                self._positions.pop(partition, None)
        if not (lost or wanted):
            return
        kept = set(self._positions)
        gained = await log.on_writer(groups.claim, group, self._member, kept, wanted)
        if gained:
            self._positions.update({p: 0 for p in gained})
            await self._on_assigned(gained)

    async def _beat(self) -> None:
        log = self._log
        while True:
            await asyncio.sleep(self._heartbeat)
            await log.on_writer(groups.heartbeat, self._group, self._member)

    async def _fetch(self, max_records: int) -> list[Record]:
        records: list[Record] = []
        for partition, offset in sorted(self._positions.items()):
            if len(records) >= max_records:
                break
            batch = await self._log.read(partition, offset, max_records - len(records))
            if batch:
                self._positions[partition] = batch[-1].offset + 1
                records.extend(batch)
        return records

    async def close(self) -> None:
        if self._beating is not None:
            self._beating.cancel()
            await asyncio.gather(self._beating, return_exceptions=True)
        if self._on_revoked is not None and self._positions:
            await self._on_revoked(set(self._positions))
        self._positions = {}
        if self._group is not None:
            group, self._group = self._group, None
            await self._log.on_writer(groups.leave, group, self._member)
