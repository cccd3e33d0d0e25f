"""A document's row is encoded straight from its state (projections/store/writes.py): the same
JSON value as serialize.document_to_json gives, for every state the fold reaches."""
from __future__ import annotations

import orjson

from projections.domain import fold
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
