"""The benchmark workload: events as a worker fleet would write them, no I/O.

`Workload(runs=40, docs=50, n=5)` is issue 11's: one block, one experiment, 40 runs of
50 documents x 5 passes of a small invoice extraction (5 header fields, 5 line items,
20 % of passes with a small disagreement), passes shuffled across runs. 40 x 50 x 5
passes + 3 lifecycle events per run + 2 set-up events = 10,122 events.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property

from events.catalogue import BlockDefined, DocumentPassCompleted, ExperimentCreated
from events.codec import encode
from events.envelope import Event, new_event
from events.log import Message
from projections.store.views import block_key
from services import fingerprints as fp
from tests.builders import T0, RunScript

ORG = "org_a"  # RunScript's organisation, experiment exp_1, workflow wf_1, block b1
SEED = 7


def invoice(rng: random.Random, doc: int) -> dict:
    drift = rng.random() < 0.2
    return {
        "vendor": "ACME Corp" if not drift else "Acme Corporation",
        "number": f"INV-{doc:05d}",
        "total": round(100 + doc * 1.5 + (0.5 if drift else 0), 2),
        "currency": "EUR",
        "lines": [{"sku": f"S{i}", "qty": i + 1, "price": 9.99 + i} for i in range(5)],
    }


def setup_events() -> list[Event]:
    """The block and experiment every run points at (metrics need both)."""
    fingerprint = fp.block_fingerprint("extract", {})
    block = BlockDefined(workflow_id="wf_1", block_id="b1", block_type="extract", config={},
                         fingerprint=fingerprint, version_id=fp.block_version_id("wf_1", "b1", fingerprint))
    experiment = ExperimentCreated(workflow_id="wf_1", block_id="b1", name="bench", n_consensus=5, documents=())
    return [new_event(block, aggregate_id=block_key(ORG, "wf_1", "b1"), org_id=ORG, producer="bench", occurred_at=T0),
            new_event(experiment, aggregate_id="exp_1", org_id=ORG, producer="bench", occurred_at=T0)]


@dataclass(frozen=True)
class Workload:
    runs: int = 40
    docs: int = 50
    n: int = 5
    prefix: str = "run"

    @property
    def run_ids(self) -> list[str]:
        return [f"{self.prefix}_{r}" for r in range(self.runs)]

    @cached_property
    def events(self) -> list[Event]:
        rng = random.Random(SEED)
        lifecycle, passes = [], []
        for run_id in self.run_ids:
            script = RunScript(run_id=run_id, docs=self.docs, n=self.n, block_type="extract")
            lifecycle += [script.created(), script.queued(), script.started()]
            for d, doc in enumerate(script.doc_ids):
                passes += [script.event(DocumentPassCompleted(document_id=doc, pass_index=i, output=invoice(rng, d),
                                                              duration_ms=100)) for i in range(self.n)]
        rng.shuffle(passes)  # each run is created first; its passes arrive in any order
        return setup_events() + lifecycle + passes

    @cached_property
    def messages(self) -> list[Message]:
        return [Message(e.aggregate_id, encode(e)) for e in self.events]

    def __len__(self) -> int:
        return self.runs * (self.docs * self.n + 3) + 2


def created_only(workload: Workload) -> list[Event]:
    """RunCreated/Queued/Started of every run, no passes: runs that ingestion fills."""
    events = []
    for run_id in workload.run_ids:
        script = RunScript(run_id=run_id, docs=workload.docs, n=workload.n, block_type="extract")
        events += [script.created(), script.queued(), script.started()]
    return events


def pass_payload(rng: random.Random, document: int, pass_index: int) -> dict:
    """A DocumentPassCompleted payload as a worker sends it over HTTP or the SDK."""
    return {"document_id": f"doc_{document}", "pass_index": pass_index, "output": invoice(rng, document),
            "duration_ms": 100}
