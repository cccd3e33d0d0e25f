"""Rows measured by the other helpers' scripts, run as they are: the consensus engine
(bench/bench_consensus.py), the rebuild (bench/bench_rebuild.py, "not yet" until it exists)
and the bounded cost of requests on a long run (bench/bench_bounded_cost.py)."""
from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from .table import Figure, Row

HERE = Path(__file__).resolve().parent
CONSENSUS = HERE / "bench_consensus.py"
REBUILD = HERE / "bench_rebuild.py"
BOUNDED = HERE / "bench_bounded_cost.py"


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


def bounded_cost(args, say) -> list[Row]:
    """Issue 17's scenario: each request's median server time against 300 ms (its bytes
    against 1 MB in the note), and the other organisation's p99 against 2x idle + 20 ms."""
    say(f"bounded cost: {BOUNDED.name} (a long run on the embedded default)")
    with tempfile.TemporaryDirectory(prefix="rl-bounded-") as tmp:
        out = Path(tmp) / "bounded.json"
        done = _run(BOUNDED, *(["--quick"] if args.quick else []), "--json", str(out), "--workdir", tmp)
        if done.returncode != 0 or not out.exists():
            return [Row("bounded cost (bench/bench_bounded_cost.py)",
                        Figure("ms", note=f"failed ({done.returncode}): {done.stderr.strip()[-200:]}"))]
        result = json.loads(out.read_text())
    scenario = f"{result['docs']:,} x {result['passes']} + {result['duplicates']:,} duplicates"
    rows = []
    for r in result["requests"]:
        size = "no answer" if r["max_bytes"] is None else f"{r['max_bytes'] / 1e6:.2f} MB"
        figure = Figure("ms server", [r["median_ms"]] if r["median_ms"] is not None else [],
                        note=f"{size}{', within 1 MB' if (r['max_bytes'] or 0) <= 1e6 else ', OVER 1 MB'}")
        rows.append(Row(f"bounded cost ({scenario}): {r['name']}", figure, "target", Figure("ms server", [300.0]),
                        ratio_note="lower is better"))
    verification = result.get("verification") or {}
    if "tenant_p99_ms" in verification:
        rows.append(Row(f"bounded cost ({scenario}): other organisation's GET run p99 while only the verification "
                        f"job runs ({verification['seconds'] or 0:.0f} s in its worker)",
                        Figure("ms p99", [verification["tenant_p99_ms"]]), "2x idle p99 + 20 ms",
                        Figure("ms p99", [result["tenant"]["target_ms"]]), ratio_note="lower is better"))
    tenant = result["tenant"]
    rows.append(Row(f"bounded cost ({scenario}): other organisation's GET run p99 while they loop",
                    Figure("ms p99", [tenant["busy_p99_ms"]], note=f"idle p99 {tenant['idle_p99_ms']:.1f} ms"),
                    "2x idle p99 + 20 ms", Figure("ms p99", [tenant["target_ms"]]), ratio_note="lower is better"))
    return rows
