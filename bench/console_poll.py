"""What the console's run page and its live poll cost on a 2,000-document run (embedded,
in-process): bytes, rows read and JSON values decoded (tests/costs.py), and time (median of
5), for an idle poll and for one after a pass changed (docs/benchmarks.md, "Reads: the
cache of rendered answers").

    .venv/bin/python -m bench.console_poll

Written to run unchanged against the tree before per-run live versions too (it finds the
page's poller, old or new, and polls the URL the page gives).
"""
import asyncio
import html
import re
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from projections.runtime.projector import Projector
from services.api.app import create_app
from services.bootstrap import start_runtime
from services.console.session import COOKIE
from services.keys import store_key
from services.ledger import Ledger
from services.settings import Settings
from tests.builders import RunScript
from tests.costs import counting
from tests.integration.test_read_your_writes import experiment

KEY = "rl_bench_console_poll"
DOCS = 2000


async def project(runtime, events):
    positions = await Ledger(runtime).append(events)
    projector = Projector(runtime.log, runtime.engine)
    task = asyncio.create_task(projector.run())
    for p in positions:
        assert await projector.wait(p, 120)
    projector.stop()
    await task


def poller(text):
    found = re.search(r'<div id="run-(?:live|poll)"[^>]*?hx-get="([^"]+)"', text)
    return html.unescape(found.group(1))


async def timed(client, url, n=5):
    times, status = [], None
    for _ in range(n):
        started = time.perf_counter()
        status = (await client.get(url)).status_code
        times.append(time.perf_counter() - started)
    return status, statistics.median(times) * 1000


async def measure() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        runtime = await start_runtime(Settings(data_dir=Path(tmp), wait_timeout=60))
        await store_key(runtime.control, KEY, "org_a")
        runtime.following.cancel()
        run = RunScript("run_long", docs=DOCS)
        await project(runtime, [experiment("exp_1"), run.created(), run.queued(), run.started(),
                                *[run.passed(f"doc_{i}", 0) for i in range(DOCS)]])
        app = create_app(runtime)
        app.state.keys.ttl = 3600
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x",
                                     cookies={COOKIE: KEY}, timeout=120) as client:
            page = await client.get(f"/console/runs/{run.run_id}")
            url = poller(page.text)
            with counting() as idle:
                status = (await client.get(url)).status_code
            status, idle_ms = await timed(client, url)
            await project(runtime, [run.passed("doc_7", 1)])
            with counting() as changed:
                first = await client.get(url)
            changed_ms = (await timed(client, url, 1))[1]  # the same changed poll again
            print(f"page {len(page.content):,} bytes; idle poll: {status}, {idle.rows} rows, {idle.json_values} JSON values, "
                  f"{idle_ms:.1f} ms; changed poll: {first.status_code}, {len(first.content):,} bytes, {changed.rows} rows, "
                  f"{changed.json_values} JSON values ({changed.json_bytes:,} bytes), {changed_ms:.1f} ms")
        await runtime.close()


def main() -> None:
    asyncio.run(measure())


if __name__ == "__main__":
    main()
