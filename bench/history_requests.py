"""A run's history requests on issue 17's long run (docs/benchmarks.md, "A run's history:
before -> after"), on the embedded default, in process: 2,000 documents x 7 passes plus
5,000 duplicate pass reports written straight to the log; each request timed (median of
REPEATS) and counted (tests/costs.py). Consensus is a constant.

    python bench/history_requests.py [TREE] [REPEATS]   # TREE: a checkout to measure (default: this one)

Not a test, and not part of `make bench` (issue 17's benchmark is); the figures go to
docs/benchmarks.md by hand."""
from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from events.catalogue import DocumentPassCompleted  # noqa: E402
from projections.domain import fold  # noqa: E402
from projections.runtime.projector import Projector  # noqa: E402
from services.api.app import create_app  # noqa: E402
from services.bootstrap import start_runtime  # noqa: E402
from services.keys import store_key  # noqa: E402
from services.ledger import Ledger  # noqa: E402
from services.settings import Settings  # noqa: E402
from tests.builders import RunScript  # noqa: E402
from tests.costs import counting  # noqa: E402
from tests.integration.test_read_your_writes import experiment  # noqa: E402

KEY = "rl_bench_history_key"


async def main() -> None:
    fold.score_document = lambda spec, votes: (0.9, {"targets": []})
    with tempfile.TemporaryDirectory() as tmp:
        await measure(Path(tmp))


async def measure(tmp: Path) -> None:
    runtime = await start_runtime(Settings(data_dir=tmp / "data", fold_processes=0), with_projector=False)
    runtime.following.cancel()
    await store_key(runtime.control, KEY, "org_a")
    script = RunScript(run_id="run_long", docs=2000, n=7, block_type="extract")
    rng = random.Random(5)
    head = [script.created(), script.queued(), script.started()]
    passes = [script.event(DocumentPassCompleted(document_id=d, pass_index=i, output={"total": i, "vendor": "ACME"},
                                                 duration_ms=10)) for d in script.doc_ids for i in range(7)]
    events = [*head, *passes, *[rng.choice(passes) for _ in range(5000)]]
    ledger = Ledger(runtime)
    await ledger.append([experiment("exp_1")])
    positions = []
    for i in range(0, len(events), 1000):
        positions += await ledger.append(events[i:i + 1000])
    projector = Projector(runtime.log, runtime.engine)
    task = asyncio.create_task(projector.run())
    started = time.perf_counter()
    assert await projector.wait(positions[-1], 1800)
    print(f"projected {len(events)} events in {time.perf_counter() - started:.1f} s")
    projector.stop(); await task
    app = create_app(runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x",
                                 headers={"Api-Key": KEY}, cookies={"runledger_console": KEY}, timeout=600) as c:
        await c.get("/v1/workflows/experiments/runs/run_long")
        reqs = {
            "GET run?as_of=<first event>": ("/v1/workflows/experiments/runs/run_long", {"as_of": positions[0].token()}),
            "GET run?as_of=<mid, by time>": ("/v1/workflows/experiments/runs/run_long", {"as_of": events[7000].occurred_at.isoformat()}),
            "console as-of slider step (i=10)": ("/console/runs/run_long/as-of", {"i": "10"}),
            "console as-of slider step (i=10000)": ("/console/runs/run_long/as-of", {"i": "10000"}),
            "console timeline (first page)": ("/console/runs/run_long/timeline", {}),
            "console timeline (jump to the middle)": ("/console/runs/run_long/timeline", {"at": positions[7000].token()}),
            "history, first page of 1,000": ("/v1/workflows/experiments/runs/run_long/events", {"limit": "1000", "order": "asc"}),
            "history, rejected only, 1,000": ("/v1/workflows/experiments/runs/run_long/events", {"limit": "1000", "status": "rejected"}),
        }
        for name, (path, params) in reqs.items():
            times = []
            for _ in range(int(sys.argv[2]) if len(sys.argv) > 2 else 3):
                with counting() as cost:
                    t = time.perf_counter(); r = await c.get(path, params=params); times.append(time.perf_counter() - t)
                assert r.status_code == 200, r.text[:300]
            print(f"| {name} | {sorted(times)[len(times) // 2]*1000:.0f} ms | {len(r.content)/1e3:.0f} KB | {cost} |")
    await runtime.close()

asyncio.run(main())
