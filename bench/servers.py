"""The two HTTP servers under load: `runledger serve` + `runledger project` on Kafka +
PostgreSQL, and the bare app."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import httpx

from events.kafka_log import KafkaEventLog
from tests.projector_process import ProjectorProcess
from tests.server import ServerProcess, free_port

from .infra import Infra
from .workload import ORG

BARE_TOPIC = "bench.bare"


@asynccontextmanager
async def runledger(infra: Infra, topic: str, workdir: Path,
                    api_workers: int = 1) -> AsyncIterator[tuple[ServerProcess, str, str]]:
    """The production topology on a fresh database: `runledger serve` (`--workers N` when
    `api_workers` > 1) serving requests only, beside one `runledger project` process (as
    docker-compose.yml runs them); yields the server, a tenant key of ORG (the load uses it)
    and an admin key (projection status)."""
    url = await infra.new_database("api")
    env = {"RUNLEDGER_KAFKA_BOOTSTRAP": infra.kafka, "RUNLEDGER_DATABASE_URL": url, "RUNLEDGER_TOPIC": topic,
           "RUNLEDGER_WAIT_TIMEOUT": "60"}
    key = await asyncio.to_thread(_create_key, env, workdir)
    admin = await asyncio.to_thread(_create_key, env, workdir, True)  # projection status is admin-only
    server = ServerProcess(workdir / "serve", env=env,
                           extra_args=["--workers", str(api_workers)] if api_workers > 1 else [])
    await asyncio.to_thread(server.start, 180)
    projector = ProjectorProcess("project", env, "runledger-projector", workdir)
    try:
        yield server, key, admin
        projector.check_alive()
    finally:
        server.stop()
        try:
            projector.stop()
        finally:
            projector.close()


def _create_key(env: dict[str, str], workdir: Path, admin: bool = False) -> str:
    """Through the CLI (`runledger keys create`), which also migrates the fresh database."""
    done = subprocess.run([sys.executable, "-m", "services.cli", "keys", "create", "--org", ORG, "--name", "bench",
                           "--data-dir", str(workdir / "keys"), *(["--admin"] if admin else [])], env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0:
        raise RuntimeError(f"runledger keys create failed: {done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1].strip()


async def caught_up(client: httpx.AsyncClient, admin: str, timeout: float = 900, poll: float = 0.2) -> None:
    """Wait until the server's projection has applied everything on the log (asked every
    `poll` seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await client.get("/v1/ledger/projections", headers={"Api-Key": admin})
        response.raise_for_status()
        status = response.json()
        main = next(p for p in status["projections"] if p["name"] == "main")
        if main["lag"] == 0:
            return
        if any(p["stopped"] for p in main["partitions"]):
            raise RuntimeError(f"runledger projector stopped: {main}")
        await asyncio.sleep(poll)
    raise TimeoutError("runledger did not catch up")


class Bare(str):
    """The bare app's base URL, with its process id (`.pid`: its CPU is measured)."""

    def __new__(cls, url: str, pid: int):
        made = super().__new__(cls, url)
        made.pid = pid
        return made


@asynccontextmanager
async def bare(infra: Infra, bodies: Path, workdir: Path) -> AsyncIterator[Bare]:
    """The bare FastAPI app in its own process; yields its base URL (with its pid)."""
    topic_log = KafkaEventLog(infra.kafka, topic=BARE_TOPIC)
    await topic_log.start()  # creates the topic as runledger would
    await topic_log.close()
    port = free_port()
    log = open(workdir / "bare.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "bench.bare_app", "--port", str(port), "--bodies", str(bodies),
                             "--kafka", infra.kafka, "--topic", BARE_TOPIC],
                            cwd=Path(__file__).resolve().parents[1], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        await _answering(proc, f"{base}/docs")
        yield Bare(base, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def _answering(proc: subprocess.Popen, url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"bare app exited with {proc.returncode}")
            try:
                await client.get(url, timeout=1)
                return
            except httpx.HTTPError:
                await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} did not answer")
