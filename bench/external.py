"""Rows measured by the other helpers' scripts, run as they are: the consensus engine
(bench/bench_consensus.py) and the rebuild (bench/bench_rebuild.py, "not yet" until it exists)."""
from __future__ import annotations

import asyncio
import re
import subprocess
import tempfile
import sys
from pathlib import Path

from .table import Figure, Row

HERE = Path(__file__).resolve().parent
CONSENSUS = HERE / "bench_consensus.py"
REBUILD = HERE / "bench_rebuild.py"


def _run(script: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          cwd=HERE.parent, timeout=3600)


def consensus(args, say) -> list[Row]:
    path = "consensus, reference invoice (40 fields + 25 lines x 7 passes), CPU per document"
    figure = Figure("ms CPU")
    for i in range(args.repeat):
        done = _run(CONSENSUS, "--runs", "10" if args.quick else "50")
        found = re.search(r"cpu:\s+median ([\d.]+) ms", done.stdout)
        if done.returncode != 0 or not found:
            return [Row(path, Figure("ms CPU", note=f"bench_consensus.py failed: {done.stderr.strip()[-200:]}"))]
        figure.values.append(float(found.group(1)))
        say(f"consensus rep {i + 1}: {figure.values[-1]} ms CPU")
    return [Row(path, figure, "target", Figure("ms CPU", [10.0]), ratio_note="lower is better")]


def rebuild(args, say, infra=None) -> list[Row]:
    """The rebuild of one generated log (consensus on, as in production): into SQLite with
    one process, and with `infra` into PostgreSQL with `--jobs 1` and `--jobs 2`."""
    if not REBUILD.exists():
        return [Row("rebuild of a large log (rate, peak RSS)", Figure("events/s", note="not yet"))]
    size = ["--events", "20000"] if args.quick else ["--events", str(args.rebuild_events)] if args.rebuild_events else []
    rows = []
    with tempfile.TemporaryDirectory(prefix="rl-rebuild-") as keep:
        runs = [("SQLite, 1 process", [])]
        if infra is not None:
            runs += [("PostgreSQL, --jobs 1", ["--jobs", "1"]), ("PostgreSQL, --jobs 2", ["--jobs", "2"])]
        for label, extra in runs:
            if extra:
                extra = [*extra, "--database-url", asyncio.run(infra.new_database("rebuild"))]
            say(f"rebuild: {REBUILD.name}, {label}")
            done = _run(REBUILD, *size, "--keep", keep, *extra)
            last = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
            note = last if done.returncode == 0 else f"failed ({done.returncode}): {done.stderr.strip()[-200:]}"
            rows.append(Row(f"rebuild of a large log (bench/bench_rebuild.py), {label}", Figure("", note=note)))
    return rows
