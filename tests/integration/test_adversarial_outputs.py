"""No output a tenant can send stops anything: the contract refuses it cleanly, or the
fold and the real store (SQLite, PostgreSQL) take it (issue 9, finding 1).

Hypothesis generates hostile pass outputs (deep, wide, weird keys, unicode, NUL,
lone surrogates, huge and non-finite numbers). Each goes the HTTP ingestion path
(`codec.build`): refused with `UndecodableEvent` (a 422), or appended to the log and
projected; then the run must complete with its targets stored, no partition stopped,
nothing quarantined.
"""
from __future__ import annotations

import uuid

from hypothesis import HealthCheck, event, example, given, settings, strategies as st
from sqlalchemy import func, select

from events import bounds
from events.codec import UndecodableEvent, build
from projections.runtime.projector import Projector
from projections.store import views
from projections.store.tables import dead_letters, document_targets, quarantined
from tests.builders import RunScript
from tests.integration.test_projector import append, project_until, read_run

weird_text = st.text(st.sampled_from(["a", ".", "*", "$", "\x00", "\x1f", "\x7f", "\ufffd", "é", "🙂", "\ud800",
                                      "\u202e", " ", "\\", '"']), max_size=8)
long_text = st.builds(lambda c, n: c * n, st.sampled_from(["k", "é", "🙂"]), st.integers(100, 300))
keys = weird_text | long_text
numbers = (st.integers(-(2**70), 2**70) | st.sampled_from([2**63 - 1, -(2**63 - 1), 2**63, 2**64, -(2**64)])
           | st.floats(allow_nan=True, allow_infinity=True))
scalars = st.none() | st.booleans() | numbers | weird_text | long_text


def deep(value, depth: int):
    for _ in range(depth):
        value = {"d": [value]}
    return value


json_values = st.recursive(scalars, lambda children: st.lists(children, max_size=5)
                           | st.dictionaries(keys, children, max_size=5), max_leaves=25)
outputs = st.one_of(
    st.dictionaries(keys, json_values, min_size=1, max_size=6),
    st.builds(deep, json_values, st.integers(5, 300)),
    st.builds(lambda n, v: {"items": [v] * n}, st.sampled_from([10, bounds.MAX_JSON_LIST_LENGTH,
                                                                bounds.MAX_JSON_LIST_LENGTH + 1]), scalars),
    st.builds(lambda k, depth: {"p": deep({k: 1}, depth)}, long_text, st.integers(1, 5)),
)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(passes=st.lists(outputs, min_size=3, max_size=3))
@example(passes=[{"a\u0000": 1, "a\ufffd": 2}] * 3)  # the cases: one stored path, a stopped partition
@example(passes=[deep(1, 250)] * 3)  # RecursionError in the consensus engine
@example(passes=[{"n": 2**64, "x": float("nan"), "s": "\ud800"}] * 3)
async def test_an_output_is_refused_cleanly_or_folded_and_stored(event_log, engine, passes):
    script = RunScript(run_id=f"run_{uuid.uuid4().hex[:12]}", docs=1, n=3, block_type="extract")
    events = [script.created()]
    for i, output in enumerate(passes):
        payload = {"document_id": "doc_0", "pass_index": i, "output": output}
        try:
            events.append(build("DocumentPassCompleted", script.run_id, payload, org_id="org_a", producer="fuzz"))
            event("an output accepted")
        except UndecodableEvent as exc:
            event("an output refused")
            assert str(exc).startswith("invalid payload") or str(exc).startswith("invalid event")
            events.append(script.passed("doc_0", i, {"refused": True}))  # the worker's next try
    positions = await append(event_log, events)
    projector = Projector(event_log, engine)
    await project_until(projector, positions)

    assert not [s.stopped for s in projector.partitions.values() if s.stopped]
    run, _ = await read_run(engine, script.run_id)
    assert run.status == "completed"
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(quarantined))).scalar() == 0
        assert (await conn.execute(select(func.count()).select_from(dead_letters))).scalar() == 0
        stored = await views.target_rows(conn, script.run_id)
        paths = (await conn.execute(select(document_targets.c.path)
                                    .where(document_targets.c.run_id == script.run_id))).scalars().all()
    assert len(stored) == len(set(paths)) >= 1
    assert all(len(p.encode()) <= bounds.MAX_PATH_BYTES for p in paths)
