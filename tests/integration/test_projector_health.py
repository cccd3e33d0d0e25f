"""Health tells the truth everywhere: an API replica with no projector of its own turns
/healthz red when the projector process dies (no heartbeat while partitions have lag);
a quarantined run turns it red and shows in /metrics; the embedded projector task is
supervised (restarted when it dies, health red meanwhile). Without an admin key,
/healthz says only its verdict."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

import httpx
import pytest

from projections.runtime import batch as batch_module
from services.api.app import create_app
from services.api.status import projection_status
from services.bootstrap import start_runtime
from services.settings import Settings
from tests.builders import RunScript
from tests.fault.workload import append, wait_until

pytestmark = pytest.mark.timeout(180)


@contextlib.asynccontextmanager
async def api(settings: Settings, with_projector: bool, prepare=None):
    runtime = await start_runtime(settings, with_projector=with_projector)
    if prepare is not None:
        prepare(runtime)
    app = create_app(runtime)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                yield runtime, client
    finally:
        await runtime.close()


async def health(client) -> tuple[int, dict]:
    response = await client.get("/healthz")
    return response.status_code, response.json()


async def wait_for_health(client, code: int, timeout: float = 60) -> dict:
    import asyncio
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got, body = await health(client)
        if got == code:
            return body
        assert loop.time() < deadline, f"/healthz stayed {got} {body}, expected {code}"
        await asyncio.sleep(0.1)


def projector_process(data_dir, log_path):
    env = {**os.environ, "RUNLEDGER_HEARTBEAT_INTERVAL": "0.3"}
    return subprocess.Popen([sys.executable, "-m", "services.cli", "project", "--data-dir", str(data_dir)],
                            env=env, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)


async def test_a_dead_projector_process_turns_health_red_on_an_api_without_one(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", heartbeat_ttl=2.0, heartbeat_interval=0.3, fold_processes=0)
    async with api(settings, with_projector=False) as (runtime, client):
        member = projector_process(settings.data_dir, tmp_path / "projector.log")
        try:
            script = RunScript(run_id="run_h1", docs=1, n=3)
            await append(runtime.log, [script.created(), *script.all_passes()])
            await wait_for_health(client, 200)  # the process beats and has applied everything
            member.send_signal(signal.SIGKILL)
            member.wait(30)
            late = RunScript(run_id="run_h2", docs=1, n=3)
            await append(runtime.log, [late.created()])
            body = await wait_for_health(client, 503)
            assert body == {"status": "degraded", "reasons": ["no_projector"]}  # no offsets or errors without a key
            status = await projection_status(runtime)
            assert any("no live projector" in p for p in status["problems"]), status["problems"]
        finally:
            if member.poll() is None:
                member.kill()
                member.wait()


async def test_a_quarantined_run_turns_health_red_and_shows_in_metrics(tmp_path, monkeypatch):
    real = batch_module.apply

    def buggy(state, event, *args, **kwargs):
        if event.aggregate_id == "run_bad" and event.type == "DocumentPassCompleted":
            raise RecursionError("simulated bug")
        return real(state, event, *args, **kwargs)

    monkeypatch.setattr(batch_module, "apply", buggy)
    settings = Settings(data_dir=tmp_path / "data", heartbeat_ttl=5.0, heartbeat_interval=0.3, fold_processes=0)
    async with api(settings, with_projector=True) as (runtime, client):
        good, bad = RunScript(run_id="run_good", docs=1, n=3), RunScript(run_id="run_bad", docs=1, n=3)
        await append(runtime.log, [good.created(), bad.created()])
        await wait_for_health(client, 200)
        positions = await append(runtime.log, [*bad.all_passes(), *good.all_passes()])
        await wait_for_health(client, 503)
        for position in positions:
            assert await runtime.projector.wait(position, 30)  # the partition went on
        status = await projection_status(runtime)
        assert [q["aggregate_id"] for q in status["quarantined"]] == ["run_bad"]
        assert "1 run(s) quarantined" in status["problems"]
        metrics = (await client.get("/metrics")).text
        assert "runledger_quarantined_runs 1.0" in metrics
        assert "run_bad" not in metrics and "org_a" not in metrics  # no tenant-identifying labels
        assert 'runledger_http_requests_total{method="GET",route="/healthz",status="503"}' in metrics


async def test_the_embedded_projector_task_is_supervised(tmp_path, monkeypatch):
    settings = Settings(data_dir=tmp_path / "data", heartbeat_ttl=5.0, heartbeat_interval=0.3, fold_processes=0)
    broken = {"on": True}

    def break_the_loop(runtime) -> None:
        real_consumer = runtime.log.consumer

        def consumer():
            if broken["on"]:
                raise RuntimeError("simulated crash of the projector loop")
            return real_consumer()

        monkeypatch.setattr(runtime.log, "consumer", consumer)

    async with api(settings, with_projector=True, prepare=break_the_loop) as (runtime, client):
        script = RunScript(run_id="run_s1", docs=1, n=3)
        positions = await append(runtime.log, [script.created(), *script.all_passes()])
        await wait_until(lambda: runtime.projector.down is not None, "the supervisor to notice the crash")
        await wait_for_health(client, 503)
        status = await projection_status(runtime)
        assert any("in-process projector is down" in p for p in status["problems"]), status["problems"]
        broken["on"] = False  # the fault clears: the supervisor's next restart sticks
        for position in positions:
            assert await runtime.projector.wait(position, 60)
        await wait_for_health(client, 200)


def test_a_projector_process_serves_its_own_health_and_metrics(tmp_path):
    from tests.server import free_port
    from tests.waiting import wait_for

    port = free_port()
    member = subprocess.Popen([sys.executable, "-m", "services.cli", "project", "--data-dir", str(tmp_path / "d"),
                               "--health-port", str(port)], stdout=open(tmp_path / "p.log", "wb"),
                              stderr=subprocess.STDOUT)
    try:
        def get(path):
            try:
                return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)
            except httpx.HTTPError:
                return None
        health = wait_for(lambda: get("/healthz"), lambda r: r is not None and r.status_code == 200)
        assert health.json() == {"status": "ok"}
        metrics = get("/metrics").text
        assert "runledger_projector_processes_alive 1.0" in metrics
        # the collector's pauses in that process (projections/runtime/gc_policy.py): young collections happened
        counts = dict(line.rsplit(" ", 1) for line in metrics.splitlines()
                      if line.startswith("runledger_gc_pause_seconds_count"))
        assert float(counts['runledger_gc_pause_seconds_count{generation="0"}']) >= 1, counts
    finally:
        member.send_signal(signal.SIGTERM)
        assert member.wait(30) == 0
