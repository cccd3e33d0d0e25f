"""A document's row is encoded straight from its state (projections/store/writes.py): the same
JSON value as serialize.document_to_json gives, for every state the fold reaches."""
from __future__ import annotations

import orjson
from hypothesis import given, settings, strategies as st

from events.catalogue import DocumentPassCompleted
from events.log import Record
from projections.domain import fold
from projections.runtime import batch
from projections.store import serialize as ser
from projections.store.database import dumps
from projections.store.writes import document_json
from tests.builders import RunScript


def test_a_document_row_holds_what_document_to_json_gives():
    script = RunScript(run_id="run_1", docs=2, n=3)
    events = [script.created(), script.failed("doc_0", 0, final=False, attempt=1), script.failed("doc_0", 0),
              script.passed("doc_0", 1, {"category": "invoice", "score": 0.5}), script.passed("doc_0", 2),
              script.passed("doc_1", 2, {"category": "é 🙂"}), script.passed("doc_1", 0), script.passed("doc_1", 1)]
    state, seen = None, 0
    for event in events:
        state = fold.apply(state, event).state
        for doc in state.documents.values():
            assert orjson.loads(str(document_json(doc))) == orjson.loads(str(dumps(ser.document_to_json(doc))))
            seen += 1
    assert seen == 2 * len(events) and state.status == "completed"


# The event index's body: pydantic-core's serialiser writes the text orjson writes of the dump.

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63 - 1), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"]), max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5).filter(str.isprintable), inner,
                                                                max_size=4),
    max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(json_values, st.booleans())
def test_an_index_body_is_the_text_orjson_writes_of_the_event_dumped(output, traced):
    script = RunScript(run_id="run_1", docs=1, n=3, block_type="extract")
    events = [script.created(), script.queued(), script.started(), script.failed("doc_0", 1), script.cancel(),
              script.event(DocumentPassCompleted(document_id="doc_0", pass_index=0, output=output))]
    trace = "00-" + "a" * 32 + "-" + "b" * 16 + "-01" if traced else None
    for event in events:
        event = event.model_copy(update={"trace": trace})
        record = Record(0, 1, "run_1", b"{}", None)
        body = batch._index_row(record, event, True, None)["body"]
        assert body == orjson.dumps(event.model_dump(mode="json"), option=orjson.OPT_NON_STR_KEYS).decode()
