"""The demo block: reproducible readings that disagree enough to make consensus interesting."""
from __future__ import annotations

import asyncio

import pytest

from projections.domain.outputs import output_problem
from services.worker.blocks import Retryable, call_block, load_block
from services.worker.demo_block import DIFFICULTIES, demo_block, difficulty
from services.worker.samples import INVOICES, sample_documents
from tests.builders import RunScript, fold_all

DOCS = sample_documents(len(INVOICES))


def inputs(i: int) -> dict:
    return DOCS[i]["handle_inputs"]


def test_the_same_document_and_pass_always_read_the_same():
    for i in range(len(DOCS)):
        for k in range(5):
            assert demo_block("extract", {}, inputs(i), k) == demo_block("extract", {}, inputs(i), k)


def test_passes_disagree_on_hard_documents_and_agree_on_clean_ones():
    hard = [i for i in range(len(DOCS)) if difficulty(inputs(i)) >= 0.1]
    assert hard, "the samples should include hard documents"
    for i in hard:
        readings = [demo_block("extract", {}, inputs(i), k) for k in range(5)]
        assert any(r != readings[0] for r in readings[1:])
    clean = next({"invoice": {"type": "json", "data": {"n": n}}} for n in range(100)
                 if difficulty({"invoice": {"type": "json", "data": {"n": n}}}) == 0.0)
    assert {str(demo_block("extract", {}, clean, k)) for k in range(7)} == {str(clean["invoice"]["data"])}


def test_difficulties_spread_over_the_samples():
    assert len({difficulty(inputs(i)) for i in range(len(DOCS))}) >= 3
    assert {difficulty(inputs(i)) for i in range(len(DOCS))} <= set(DIFFICULTIES)


@pytest.mark.parametrize("block_type, config", [
    ("extract", {}), ("classifier", {"labels": ["invoice", "receipt"]}), ("split", {}), ("for_each", {}),
])
def test_every_block_type_gets_an_output_of_its_shape(block_type, config):
    for i in range(len(DOCS)):
        for k in range(7):
            assert output_problem(block_type, demo_block(block_type, config, inputs(i), k)) is None


def test_a_run_of_the_samples_scores_between_agreement_and_chaos():
    script = RunScript(docs=len(DOCS), n=5, block_type="extract")
    by_id = dict(zip(script.doc_ids, DOCS))
    events = [script.created(), script.queued(), script.started()]
    events += [script.passed(d, k, demo_block("extract", {}, by_id[d]["handle_inputs"], k))
               for d in script.doc_ids for k in range(5)]
    run, _ = fold_all(events)
    assert run.status == "completed"
    assert 0.6 < run.score < 0.99
    scores = [doc.score for doc in run.documents.values()]
    assert max(scores) - min(scores) > 0.1
    again, _ = fold_all(events)
    assert again.score == run.score


def test_sample_documents_are_distinct_however_many_are_asked_for():
    docs = sample_documents(20)
    assert len({str(d["handle_inputs"]) for d in docs}) == 20


async def test_sync_and_async_blocks_are_called_the_same_way():
    async def async_block(block_type, config, handle_inputs, pass_index):
        await asyncio.sleep(0)
        return {"pass": pass_index, "type": block_type}

    def sync_block(block_type, config, handle_inputs, pass_index):
        return {"pass": pass_index, "type": block_type}

    for fn in (async_block, sync_block):
        assert await call_block(fn, "extract", {}, {}, 2) == {"pass": 2, "type": "extract"}


def test_blocks_load_from_module_and_function_names():
    assert load_block("services.worker.demo_block:demo_block") is demo_block
    with pytest.raises(ValueError, match="module:function"):
        load_block("services.worker.demo_block")
    assert str(Retryable("rate limited", code="429")) == "rate limited"
