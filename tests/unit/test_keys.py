"""Composite keys never collide, and every key written from ordinary ids stays what it was."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from hypothesis import given, strategies as st

from events import keys
from events.codec import build, from_dict
from events.envelope import NAMESPACE
from projections.runtime.batch import result_id
from projections.store.views import block_key
from tests.builders import fold_all

ids = st.text(st.sampled_from("ab:/\"[],\\"), min_size=1, max_size=6)


def test_block_keys_of_different_triples_differ():
    assert block_key("org", "x:y", "z") != block_key("org", "x", "y:z")
    assert block_key("t:u", "wf", "b") != block_key("t", "u:wf", "b")


@given(ids, ids, ids, ids, ids, ids)
def test_no_two_triples_share_a_block_key(o1, w1, b1, o2, w2, b2):
    assert (block_key(o1, w1, b1) == block_key(o2, w2, b2)) == ((o1, w1, b1) == (o2, w2, b2))


@given(ids, ids, ids, ids)
def test_no_two_pairs_share_a_result_id_or_a_pass_event_id(r1, d1, r2, d2):
    assert (result_id(r1, d1) == result_id(r2, d2)) == ((r1, d1) == (r2, d2))
    assert (keys.fact_key(r1, d1, 0, "T") == keys.fact_key(r2, d2, 0, "T")) == ((r1, d1) == (r2, d2))


def test_keys_from_ordinary_ids_keep_their_old_form():
    assert block_key("org_a", "wf_1", "b:1") == "block:org_a:wf_1:b:1"
    assert result_id("run_1", "doc/0") == "res_" + uuid.uuid5(uuid.NAMESPACE_URL, "run_1/doc/0").hex[:24]
    event = build("DocumentPassCompleted", "run_1", {"document_id": "d/1", "pass_index": 2, "output": {}},
                  org_id="org_a", producer="p")
    assert event.event_id == uuid.uuid5(NAMESPACE, "run_1/d/1/2/DocumentPassCompleted")


def _old_block_defined(aggregate_id: str, org_id: str, workflow_id: str, block_id: str, fingerprint: str) -> dict:
    """A BlockDefined as the old code wrote it, aggregate id `block:{org}:{workflow}:{block}`."""
    return {"event_id": str(uuid.uuid4()), "type": "BlockDefined", "schema_version": 1,
            "aggregate_id": aggregate_id, "occurred_at": datetime(2026, 1, 1, tzinfo=timezone.utc).isoformat(),
            "producer": "api", "org_id": org_id,
            "payload": {"workflow_id": workflow_id, "block_id": block_id, "block_type": "extract", "config": {},
                        "fingerprint": fingerprint, "version_id": f"blkv_{fingerprint}"}}


def fold_by_aggregate(bodies: list[dict]) -> dict:
    states: dict = {}
    for body in bodies:
        event = from_dict(body)
        states[event.aggregate_id], _ = fold_all([event], states.get(event.aggregate_id))
    return states


def test_an_old_log_with_colliding_block_keys_folds_each_block_on_its_own():
    old_log = [
        _old_block_defined("block:org_a:wf_1:b1", "org_a", "wf_1", "b1", "f1"),
        _old_block_defined("block:t:u:wf:b", "t:u", "wf", "b", "f2"),  # org "t:u"
        _old_block_defined("block:t:u:wf:b", "t", "u:wf", "b", "f3"),  # org "t", workflow "u:wf": same old key
        _old_block_defined("block:org_a:wf_1:b1", "org_a", "wf_1", "b1", "f4"),
    ]
    states = fold_by_aggregate(old_log)
    assert set(states) == {"block:org_a:wf_1:b1", block_key("t:u", "wf", "b"), block_key("t", "u:wf", "b")}
    ordinary = states["block:org_a:wf_1:b1"]  # unchanged key, same state as before
    assert [v.fingerprint for v in ordinary.versions] == ["f1", "f4"]
    assert [v.fingerprint for v in states[block_key("t:u", "wf", "b")].versions] == ["f2"]
    tenant_t = states[block_key("t", "u:wf", "b")]
    assert tenant_t.org_id == "t" and [v.fingerprint for v in tenant_t.versions] == ["f3"]
