"""Consensus never runs on the API's event loop: while the embedded projector scores a
heavy document (a stand-in scorer that spins until released), the API still answers;
and `?as_of=` refolds a run from stored results without rescoring anything."""
from __future__ import annotations

import asyncio
import threading

import pytest

from events.catalogue import DocumentSpec, ExperimentCreated
from events.envelope import new_event
from projections.domain import fold
from services.keys import create_key
from services.settings import Settings
from tests.builders import T0, RunScript
from tests.fault.workload import append, wait_until
from tests.integration.test_projector_health import api

pytestmark = pytest.mark.timeout(120)


def experiment():
    """exp_1, which RunScript's runs belong to (runs of a missing experiment are not served)."""
    docs = (DocumentSpec(document_id="doc_0", filename="doc_0.json", handle_inputs={}),)
    payload = ExperimentCreated(workflow_id="wf_1", block_id="b1", name="e", n_consensus=3, documents=docs)
    return new_event(payload, aggregate_id="exp_1", org_id="org_a", producer="test", occurred_at=T0)


async def test_the_api_answers_while_a_heavy_document_is_scored(tmp_path, monkeypatch):
    real_score = fold.score_document
    scoring, release, order = threading.Event(), threading.Event(), []

    def heavy(spec, votes):
        scoring.set()
        while not release.is_set():  # CPU-bound until the test has been answered
            sum(range(1000))
        order.append("scored")
        return real_score(spec, votes)

    monkeypatch.setattr(fold, "score_document", heavy)
    settings = Settings(data_dir=tmp_path / "data", heartbeat_interval=0.3, fold_processes=0)
    async with api(settings, with_projector=True) as (runtime, client):
        script = RunScript(run_id="run_heavy", docs=1, n=3)
        positions = await append(runtime.log, [script.created(), *script.all_passes()])
        await wait_until(scoring.is_set, "the projector to start scoring")
        answers = []
        for _ in range(5):  # each would wait behind the scoring if it ran on the loop
            response = await asyncio.wait_for(client.get("/healthz"), 30)
            answers.append(response.status_code)
        order.append("answered")
        release.set()
        assert await runtime.projector.wait(positions[-1], 30)
    assert len(answers) == 5 and order == ["answered", "scored"]


async def test_as_of_refolds_from_stored_results_without_rescoring(tmp_path, monkeypatch):
    settings = Settings(data_dir=tmp_path / "data", heartbeat_interval=0.3)
    async with api(settings, with_projector=True) as (runtime, client):
        secret, _ = await create_key(runtime.control, "org_a")
        script = RunScript(run_id="run_asof", docs=2, n=3, block_type="extract")
        outputs = [{"total": 10 + i, "vendor": "ACME"} for i in range(3)]
        events = [experiment(), script.created(),
                  *[script.passed(d, i, outputs[i]) for d in script.doc_ids for i in range(3)]]
        positions = await append(runtime.log, events)
        assert await runtime.projector.wait(positions[-1], 30)
        headers = {"Api-Key": secret}
        answer = await client.get(f"/v1/workflows/experiments/runs/{script.run_id}", headers=headers)
        assert answer.status_code == 200, (answer.status_code, answer.headers, answer.text)
        now = answer.json()
        assert now["lifecycle"]["status"] == "completed", now

        def no_rescoring(spec, votes):
            raise AssertionError("as_of ran the consensus engine")

        monkeypatch.setattr(fold, "score_document", no_rescoring)
        then = await client.get(f"/v1/workflows/experiments/runs/{script.run_id}", headers=headers,
                                params={"as_of": positions[-1].token()})
        assert then.status_code == 200, then.text
        assert {k: v for k, v in then.json().items() if not k.startswith("as_of")} == now
        assert now["lifecycle"]["status"] == "completed" and now["score"] is not None


async def test_a_batch_folded_in_the_process_pool_writes_what_a_thread_fold_writes(tmp_path, monkeypatch):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from events.sqlite_log import SqliteEventLog
    from projections.runtime import projector as projector_module
    from projections.runtime.projector import Projector
    from projections.store.database import create_schema, make_engine
    from tests.integration.test_projector import project_until
    from tests.state_hash import state_hashes

    log = SqliteEventLog(tmp_path / "log.db", partitions=3)
    await log.start()
    script = RunScript(run_id="run_pool", docs=3, n=3, block_type="extract")
    outputs = [{"total": 10 + i, "lines": [{"sku": "a", "qty": i}]} for i in range(3)]
    positions = await append(log, [script.created(), *[script.passed(d, i, outputs[i])
                                                       for d in script.doc_ids for i in range(3)]])
    engines = {}
    for name in ("thread", "pool"):
        engines[name] = make_engine(f"sqlite+aiosqlite:///{tmp_path / name}.db")
        await create_schema(engines[name])
    await project_until(Projector(log, engines["thread"], batch_size=4), positions[-1:])
    monkeypatch.setattr(projector_module, "POOL_FROM_BYTES", 0)  # every batch goes to the pool
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    try:
        await project_until(Projector(log, engines["pool"], batch_size=4, fold_pool=pool), positions[-1:])
    finally:
        pool.shutdown()
    assert await state_hashes(engines["pool"]) == await state_hashes(engines["thread"])
    for engine in engines.values():
        await engine.dispose()
    await log.close()
