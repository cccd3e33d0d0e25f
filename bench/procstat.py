"""CPU a process (and the processes it started) has used: proc(5), Linux."""
from __future__ import annotations

import os
from pathlib import Path


def cpu_seconds(pid: int, descendants: bool = True, reaped: bool = False) -> float:
    """User + system CPU-seconds of `pid` so far, with its live descendants' (the workers
    of `serve --workers N`, a fold process) unless `descendants` is False, and with its
    children that ended and were waited for when `reaped` (a server's finished backends)."""
    total = _own(pid, reaped)
    if descendants:
        total += sum(_own(child) for child in _descendants(pid))
    return total


def _own(pid: int, reaped: bool = False) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:  # ended since it was listed
        return 0.0
    ticks = sum(int(f) for f in fields[11:15 if reaped else 13])  # utime + stime (+ cutime + cstime)
    return ticks / os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except FileNotFoundError:
                continue
            found += children
            todo += children
    return found
