"""The rebuild row: WP6's bench/bench_rebuild.py when it exists, else "not yet"."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .table import Figure, Row

SCRIPT = Path(__file__).resolve().parent / "bench_rebuild.py"


def rows(args, say) -> list[Row]:
    if not SCRIPT.exists():
        return [Row("rebuild of a large log (rate, peak RSS)", Figure("events/s", note="not yet"))]
    say(f"rebuild: {SCRIPT.name}")
    done = subprocess.run([sys.executable, str(SCRIPT), *(["--quick"] if args.quick else [])],
                          capture_output=True, text=True, cwd=SCRIPT.parents[1], timeout=3600)
    last = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    note = last if done.returncode == 0 else f"failed ({done.returncode}): {done.stderr.strip()[-200:]}"
    return [Row("rebuild of a large log (bench/bench_rebuild.py)", Figure("", note=note))]
