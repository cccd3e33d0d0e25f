"""wrk (the C load tool, `apt-get install wrk`) against one URL on loopback: req/s, p50, p99."""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

CONNECTIONS = 16
THREADS = 2
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int  # answered in the whole run


def available() -> bool:
    return shutil.which("wrk") is not None


def run(url: str, seconds: float, headers: dict[str, str] | None = None) -> Load:
    cmd = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "10s"]
    for name, value in (headers or {}).items():
        cmd += ["-H", f"{name}: {value}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors on {url}:\n{out}")
    return Load(float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), _percentile(out, "50"),
                _percentile(out, "99"), int(re.search(r"(\d+) requests in", out).group(1)))


def _percentile(out: str, which: str) -> float:
    value, unit = re.search(rf"^\s+{which}(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M).groups()
    return float(value) * _UNITS[unit]
