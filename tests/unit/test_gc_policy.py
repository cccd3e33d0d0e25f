"""The collector's policy for long-running processes (projections/runtime/gc_policy.py):
what survives a full collection is frozen, so the next one scans only what came since;
a frozen object is still freed when nothing uses it, and a frozen garbage cycle waits
for the sweep, which scans everything once per `sweep_seconds`. Real collections, no fakes
but the clock."""
from __future__ import annotations

import gc
import weakref

import pytest

from projections.runtime import gc_policy


class Node:
    pass


@pytest.fixture
def clock():
    now = [0.0]
    gc_policy.install(600, clock=lambda: now[0])
    yield now
    gc_policy.uninstall()
    assert gc.get_freeze_count() == 0  # back to CPython's own collector


def cycle() -> weakref.ref:
    node = Node()
    node.me = node
    return weakref.ref(node)


def test_a_full_collection_freezes_its_survivors_and_the_sweep_frees_frozen_cycles(clock):
    kept = Node()
    gc.collect()
    assert gc.get_freeze_count() > 0  # everything alive now is out of the collector's scans
    frozen_cycle = cycle()
    gc.collect()  # the cycle is garbage already: not yet frozen, so collected
    assert frozen_cycle() is None
    node = Node()
    node.me = node
    held = weakref.ref(node)
    gc.collect()  # alive here: frozen with the survivors
    del node
    gc.collect()
    assert held() is not None  # a frozen cycle waits for the sweep
    clock[0] = 599
    gc.collect()
    assert held() is not None and gc_policy.installed().sweeps == 0
    clock[0] = 600
    gc.collect()  # the first full collection once a sweep is due scans everything
    assert held() is None and gc_policy.installed().sweeps == 1
    assert gc.get_freeze_count() > 0  # and freezes again
    assert kept is not None


def test_a_frozen_object_is_still_freed_when_nothing_uses_it(clock):
    node = Node()
    ref = weakref.ref(node)
    gc.collect()
    assert gc.get_freeze_count() > 0
    del node  # no cycle: reference counting frees it, frozen or not
    assert ref() is None


def test_every_collection_is_timed_and_sweep_0_freezes_nothing():
    gc_policy.install(0)
    try:
        before = (list(gc_policy.pauses.buckets[2]), gc_policy.paused_seconds())
        gc.collect()
        gc.collect()
        assert sum(gc_policy.pauses.buckets[2]) == sum(before[0]) + 2
        assert gc_policy.paused_seconds() > before[1]
        assert gc.get_freeze_count() == 0  # CPython's own collector, pauses recorded only
    finally:
        gc_policy.uninstall()
