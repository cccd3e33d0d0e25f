"""Short pauses of CPython's cyclic garbage collector in a long-running process.

A full (generation 2) collection scans every object the collector tracks, and stops the
whole process while it does: the event loop, the fold's thread, every request. Most of a
projector's or an API server's heap lives as long as the process (modules, compiled SQL,
the live cache's runs), so the pauses grow with the heap: under
`bench/latency_breakdown.py --rate 1000` a projector's full collections took 100-240 ms
each, every ~8 s, and they were the slowest batches' largest step.

`install(sweep_seconds)` freezes what survives each full collection (`gc.freeze()`: moved
to the permanent generation, which collections do not scan), so the next one scans only
what was allocated since: 20-40 ms in the same bench. A frozen object is still freed by
reference counting the moment nothing uses it; only one that ends up in a garbage cycle
waits, for the sweep: the first full collection `sweep_seconds` after the last one scans
everything (the permanent generation is unfrozen for it), then freezes again. So at most
`sweep_seconds` of such cycles wait, and a full-length pause comes once per sweep instead
of every few seconds.

The hook records every collection's pause (`pauses`, a fixed histogram: the callback runs
inside the collector, where taking a lock could deadlock, so it only adds to lists) and the
seconds paused so far (`paused_seconds()`: a projector's batch logs what its batch lost,
`gc_ms`).
"""
from __future__ import annotations

import bisect
import gc
import time

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Pauses:
    """Per generation: counts per bucket (the last one: above every bound), sum, count."""

    def __init__(self) -> None:
        self.buckets = {g: [0] * (len(BUCKETS) + 1) for g in range(3)}
        self.sums = [0.0, 0.0, 0.0]
        self.total = 0.0

    def add(self, generation: int, seconds: float) -> None:
        self.buckets[generation][bisect.bisect_left(BUCKETS, seconds)] += 1  # the first bound >= seconds
        self.sums[generation] += seconds
        self.total += seconds


class _Policy:
    def __init__(self, sweep_seconds: float, clock=time.monotonic) -> None:
        self.sweep_seconds, self.clock = sweep_seconds, clock
        self.freezing = sweep_seconds > 0
        self.last_sweep = clock()
        self.sweeps = 0
        self._started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        generation = info["generation"]
        if phase == "start":
            if self.freezing and generation == 2 and self.clock() - self.last_sweep >= self.sweep_seconds:
                gc.unfreeze()  # into the oldest generation: this collection scans everything
                self.last_sweep = self.clock()
                self.sweeps += 1
            self._started = time.perf_counter()
            return
        pauses.add(generation, time.perf_counter() - self._started)
        if self.freezing and generation == 2:
            gc.freeze()


pauses = Pauses()
_installed: _Policy | None = None


def install(sweep_seconds: float = 600.0, clock=time.monotonic) -> None:
    """Record every collection's pause; with `sweep_seconds` > 0, also freeze what survives
    each full collection and sweep everything once per `sweep_seconds` (0: CPython's own
    collector, pauses recorded only). Installing again replaces the policy."""
    global _installed
    uninstall()
    _installed = _Policy(sweep_seconds, clock)
    gc.callbacks.append(_installed)


def uninstall() -> None:
    """Back to CPython's own collector: the hook goes, everything frozen is unfrozen."""
    global _installed
    if _installed is not None:
        gc.callbacks.remove(_installed)
        _installed = None
        gc.unfreeze()


def installed() -> _Policy | None:
    return _installed


def paused_seconds() -> float:
    """The seconds this process spent in collections since the hook was first installed."""
    return pauses.total
