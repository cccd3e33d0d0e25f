"""CPU a process (and the processes it started) has used: proc(5), Linux."""
from __future__ import annotations

import os
from pathlib import Path


def cpu_seconds(pid: int, descendants: bool = True) -> float:
    """User + system CPU-seconds of `pid` so far, with its live descendants' (the workers
    of `serve --workers N`, a fold process) unless `descendants` is False."""
    total = _own(pid)
    if descendants:
        total += sum(_own(child) for child in _descendants(pid))
    return total


def _own(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:  # ended since it was listed
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


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
