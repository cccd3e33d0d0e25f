"""Time travel from snapshots is time travel: for any history, at every position, the nearest
snapshot plus the events after it gives the run resource and the timeline counters a full
refold gives (projections/domain/snapshots.py), and the counters the projector stores beside
each row are those of a full refold too.

Histories are generated as tests/unit/test_fold_properties.py generates them (any order,
retries, cancels and run failures, duplicates anywhere after their original), plus events
for the run before it exists, passes for unknown documents, and records appended at times
far from their stamps (the fold clamps those). They go through the projector's own batch
fold (`Batch.fold`), in batches of any size, with what `load` would read between batches
carried over; the rows must not depend on where the batches were cut.
"""
from __future__ import annotations

import uuid
from datetime import timedelta

import orjson
from hypothesis import given, settings, strategies as st

from events.codec import encode, from_dict
from events.log import Record
from projections.domain.fold import apply
from projections.domain.snapshots import Fact, Tail, restore
from projections.runtime import history_index
from projections.runtime.batch import Batch
from projections.store.read_columns import run_resource
from tests.unit.test_fold_properties import run_logs, with_duplicates


@st.composite
def histories(draw):
    """(the run's records in log order, the RunScript's run id)."""
    created, events = draw(run_logs())
    events = with_duplicates(events, draw(st.data())) if events else events
    script_events = list(events)
    if events and draw(st.booleans()):  # a stray pass for a document the run does not have
        stray = events[0].model_copy(update={"event_id": uuid.uuid4()})
        if stray.type in ("DocumentPassCompleted", "DocumentPassFailed"):
            stray = stray.model_copy(update={"payload": stray.payload.model_copy(update={"document_id": "doc_x"})})
        script_events.insert(draw(st.integers(0, len(script_events))), stray)
    early = draw(st.integers(0, 2))  # the run's events before its RunCreated (rejected: unknown run)
    ordered = script_events[:early] + [created] + script_events[early:]
    records = []
    for offset, event in enumerate(ordered):
        skew = draw(st.sampled_from([0, 0, 0, 5, -3600, 9 * 86400]))  # seconds the log's clock is off
        appended = event.occurred_at + timedelta(seconds=skew)
        records.append(Record(0, offset, event.aggregate_id, encode(event), int(appended.timestamp() * 1000)))
    return records, created.aggregate_id


def project(records: list[Record], cuts: list[int], every: int):
    """Fold `records` in batches cut at `cuts`, carrying over what `load` would read. Returns
    (the index rows by offset, the snapshots, the heads rows, the deliveries, the final state)."""
    index: dict[int, dict] = {}
    snapshots, deliveries, heads = [], [], []
    state, head, accepted = None, None, {}
    bounds = [0, *sorted(set(cuts)), len(records)]
    for start, end in zip(bounds, bounds[1:]):
        if start == end:
            continue
        batch = Batch("main", records[start:end])
        batch.snapshot_every = every
        batch.decode_all()
        run_id = records[0].key
        if state is not None:
            batch.loaded[("run", run_id)] = state
            batch.states[("run", run_id)] = state
        batch.history = history_index.Loaded(
            heads={run_id: history_index.Head(head.next_seq, head.pass_facts, head.high_water, True)} if head else {},
            accepted={key: history_index.Indexed(0, row["offset"], row["deliveries"] or 1, row["last_offset"])
                      for key, row in accepted.items()})
        batch.fold()
        tracker = batch.trackers[("run", run_id)]
        for indexed in tracker.repeats.values():  # a stored row counting new deliveries: the UPDATE
            index[indexed.offset].update(deliveries=indexed.deliveries, last_offset=indexed.last_offset)
        for row in batch.index_rows[("run", run_id)]:
            row = {**row, "body": orjson.loads(str(row["body"])) if row["body"] is not None else None}  # as stored
            index[row["offset"]] = row
            if row["accepted"]:
                accepted[(run_id, row["event_id"], row["type"])] = row
        rows = tracker.rows()
        snapshots += rows["run_snapshots"]
        deliveries += rows["event_deliveries"]
        heads = rows["history_heads"] or heads
        head = tracker.head
        state = batch.states[("run", run_id)]
    return [index[o] for o in sorted(index)], snapshots, heads, deliveries, state


def refold_counters_and_resources(rows: list[dict]):
    """What a full refold shows after each row: (resource or None, counters or None)."""
    state, seen = None, []
    for row in rows:
        if row["accepted"]:
            state = apply(state, from_dict(row["body"])).state
        if state is None:
            seen.append((None, None))
            continue
        passes = sum(len(doc.passes) for doc in state.documents.values())
        seen.append((run_resource(state), [state.status, state.completed_document_count, state.error_count, passes]))
    return seen


def from_snapshot(rows: list[dict], snapshots: list[dict], final, seq: int):
    """What time travel folds for the row at `seq`: the nearest snapshot, the rows after it."""
    snapshot = max((s for s in snapshots if s["seq"] <= seq), key=lambda s: s["seq"], default=None)
    start = snapshot["seq"] if snapshot else -1
    tail_rows = [r for r in rows if start < r["seq"] <= seq]
    touched = {r["document_id"] for r in tail_rows if r["accepted"] and r["document_id"]}
    facts = {doc: [Fact(r["pass_fact"], r["type"] == "DocumentPassCompleted", r["occurred_at"])
                   for r in rows if r["document_id"] == doc and r["pass_fact"] is not None and r["seq"] <= start]
             for doc in touched}
    scores = {doc: final.documents[doc].score for doc in touched}
    tail = Tail(*restore(snapshot["state"] if snapshot else None, final.run_id, final.org_id, final.spec, facts),
                scores)
    for row in tail_rows:
        if row["accepted"]:
            tail.apply(from_dict(row["body"]))
    return (run_resource(tail.state) if tail.state else None), tail.counters()


@settings(max_examples=100, deadline=None)
@given(histories(), st.integers(1, 5), st.data())
def test_snapshot_plus_tail_is_a_full_refold_at_every_position(history, every, data):
    records, _ = history
    cuts = data.draw(st.lists(st.integers(0, len(records)), max_size=4))
    rows, snapshots, heads, deliveries, final = project(records, cuts, every)
    assert [row["seq"] for row in rows] == list(range(len(rows)))
    created = [r["seq"] for r in rows if r["accepted"] and r["type"] == "RunCreated"]
    assert [s["seq"] for s in snapshots] == [s for s in range(len(rows)) if (s + 1) % every == 0 or s in created]
    reference = refold_counters_and_resources(rows)
    for row, (resource, counters) in zip(rows, reference):
        assert row["counters"] == counters  # stored beside the row by the projector
        if final is not None:
            assert from_snapshot(rows, snapshots, final, row["seq"]) == (resource, counters), row["seq"]
    for snapshot in snapshots:
        assert snapshot["high_water"] == max(r["occurred_at"] for r in rows if r["seq"] <= snapshot["seq"])


@settings(max_examples=100, deadline=None)
@given(histories(), st.integers(1, 5), st.data())
def test_the_rows_do_not_depend_on_where_batches_are_cut(history, every, data):
    records, _ = history
    cuts = data.draw(st.lists(st.integers(0, len(records)), max_size=6))
    assert project(records, cuts, every)[:4] == project(records, [], every)[:4]


@settings(max_examples=50, deadline=None)
@given(histories())
def test_an_accepted_event_delivered_again_is_counted_on_its_row_not_indexed(history):
    records, _ = history
    rows, _, _, deliveries, _ = project(records, [], 3)
    accepted = [(r["event_id"], r["type"]) for r in rows if r["accepted"]]
    assert len(accepted) == len(set(accepted))  # one row per accepted event
    assert len(rows) + len(deliveries) == len(records)  # every record is a row or a counted delivery
    by_offset = {r["offset"]: r for r in rows}
    for delivery in deliveries:
        assert by_offset[delivery["event_offset"]]["deliveries"] >= 2
    assert sum((r["deliveries"] or 1) - 1 for r in rows) == len(deliveries)
