"""Consumer groups of the embedded log, kept in the log's own file.

Members heartbeat; a member is gone when its heartbeat is older than the session
timeout (or, on this host, when its process no longer exists); partitions are split
by the sorted live member ids (range assignor). A member takes a partition only once
no other live member claims it, so a partition changes hands revoke-first, as in
Kafka. Every function runs on the log's writer connection.
"""
from __future__ import annotations

import os
import socket
import sqlite3
import time

SCHEMA = """
CREATE TABLE IF NOT EXISTS group_members (
    "group" TEXT NOT NULL,
    member_id TEXT NOT NULL,
    heartbeat_ms INTEGER NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    claimed TEXT NOT NULL DEFAULT '',
    PRIMARY KEY ("group", member_id)
) WITHOUT ROWID;
"""


def _host() -> str:
    """This host and pid namespace: where a member's pid means something (containers
    sharing a hostname have pids of their own)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}/{namespace}"


HOST = _host()


def heartbeat(conn: sqlite3.Connection, group: str, member: str) -> None:
    conn.execute('UPDATE group_members SET heartbeat_ms = ? WHERE "group" = ? AND member_id = ?',
                        (_now_ms(), group, member))

def membership(conn: sqlite3.Connection, group: str, member: str, session_ms: int,
               partitions: int) -> tuple[set[int], set[int]]:
    """Heartbeat (rejoining if evicted), drop dead members; return this member's
    range and the partitions other live members claim."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        now = _now_ms()
        conn.execute(
            'INSERT INTO group_members ("group", member_id, heartbeat_ms, host, pid) VALUES (?, ?, ?, ?, ?)'
            ' ON CONFLICT DO UPDATE SET heartbeat_ms = excluded.heartbeat_ms',
            (group, member, now, HOST, os.getpid()),
        )
        rows = conn.execute('SELECT member_id, heartbeat_ms, host, pid, claimed FROM group_members'
                            ' WHERE "group" = ?', (group,)).fetchall()
        dead = [m for m, beat, host, pid, _ in rows if beat < now - session_ms or not _alive(host, pid)]
        conn.executemany('DELETE FROM group_members WHERE "group" = ? AND member_id = ?',
                         [(group, m) for m in dead])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    live = sorted(m for m, *_ in rows if m not in dead)
    taken = {p for m, _, _, _, claimed in rows if m not in dead and m != member for p in parse_claims(claimed)}
    return _range(live.index(member), len(live), partitions), taken

def claim(conn: sqlite3.Connection, group: str, member: str, kept: set[int], wanted: set[int]) -> set[int]:
    """Record what this member consumes: what it keeps plus what no one else claims."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        rows = conn.execute('SELECT claimed FROM group_members WHERE "group" = ? AND member_id != ?',
                            (group, member)).fetchall()
        taken = {p for (claimed,) in rows for p in parse_claims(claimed)}
        gained = wanted - taken
        claimed = ",".join(map(str, sorted(kept | gained)))
        conn.execute('UPDATE group_members SET claimed = ? WHERE "group" = ? AND member_id = ?',
                     (claimed, group, member))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return gained

def leave(conn: sqlite3.Connection, group: str, member: str) -> None:
    conn.execute('DELETE FROM group_members WHERE "group" = ? AND member_id = ?', (group, member))


def _range(index: int, members: int, partitions: int) -> set[int]:
    """Kafka's range assignor: member `index` of `members` gets one contiguous slice."""
    size, extra = divmod(partitions, members)
    start = index * size + min(index, extra)
    return set(range(start, start + size + (1 if index < extra else 0)))


def parse_claims(claimed: str) -> set[int]:
    """The partitions a member's `claimed` column lists."""
    return {int(p) for p in claimed.split(",") if p}


def _alive(host: str, pid: int) -> bool:
    """A member on this host whose process is gone is dead now, not after its session timeout."""
    if host != HOST:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _now_ms() -> int:
    return int(time.time() * 1000)
