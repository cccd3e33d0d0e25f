"""Run the API with uvicorn on a built Runtime; close everything on the way out.

`workers` > 1 (`runledger serve --workers N`): this process and N-1 sibling processes each
bind the same host:port with SO_REUSEPORT, and the kernel spreads new connections over them.
Each sibling is a whole `runledger serve` (its own Runtime: producer, read-model pool,
checkpoint listener); the projector runs elsewhere (`runledger project`), which is why only
Kafka + PostgreSQL allows it (services/cli.py refuses the rest).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys

import uvicorn

from projections.runtime import gc_policy

from .api.app import create_app
from .bootstrap import start_runtime
from .http_server import Server, StoppingAnswers
from .keys import ensure_bootstrap_key
from .settings import Settings
from .shutdown import FINISHED, REQUESTS, Grace

log = logging.getLogger("runledger")

PROCESS_HEADER = b"x-runledger-process"  # the answering process's id, with --workers > 1


async def serve(settings: Settings, worker: str | None = None, worker_concurrency: int = 8, workers: int = 1,
                sibling: bool = False) -> None:
    """`worker` (MODULE:FUNCTION): also run that block over pending runs, in this process.
    `sibling`: one of the N-1 processes the first one started (no bootstrap key, no block)."""
    grace = Grace(settings.shutdown_grace)
    grace.own_threads()
    gc_policy.install(settings.gc_sweep_seconds)  # short collector pauses (projections/runtime/gc_policy.py)
    if sibling:
        from .fold_processes import exit_with_parent
        exit_with_parent()
    runtime = await start_runtime(settings, grace=grace)  # the first process migrates before the siblings start
    in_server = None
    siblings: list[subprocess.Popen] = []
    try:
        if not sibling:
            await _announce(settings, runtime)
        shared = workers > 1 or sibling
        app = create_app(runtime)
        served = StoppingAnswers(_ProcessHeader(app) if shared else app, grace)
        config = uvicorn.Config(served, host=settings.host, port=settings.port,
                                log_level="warning", lifespan="on",
                                forwarded_allow_ips=settings.forwarded_allow_ips,  # None: uvicorn's default
                                timeout_graceful_shutdown=max(0.1, grace.seconds * REQUESTS))
        server = Server(config)

        def stop() -> None:
            server.should_exit = True
            for proc in siblings:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)

        grace.on_signals(stop)
        if worker and not sibling:
            from .worker.in_server import InServerWorker
            in_server = InServerWorker(worker, runtime.log, worker_concurrency)
            in_server.start()
        if not shared:
            await server.serve()
        else:
            listening = reuse_port_socket(settings.host, settings.port)
            if not sibling:
                bound = settings.with_(port=listening.getsockname()[1])  # the port itself, should 0 have been asked
                siblings = [_start_sibling(bound) for _ in range(workers - 1)]
            await server.serve(sockets=[listening])
    finally:
        if in_server is not None:
            await in_server.stop(grace)
        await runtime.close()
        await _stop_siblings(siblings, grace)
    await grace.leave()


async def _announce(settings: Settings, runtime) -> None:
    key = await ensure_bootstrap_key(runtime.control, settings.bootstrap_key)
    if key:
        print(f"\nrunledger: first start, created an API key for org 'default' (shown once):\n\n    {key}\n",
              flush=True)
    where = "embedded log at " + str(settings.log_path) if settings.embedded else settings.kafka_bootstrap
    log.info("runledger on http://%s:%s (%s; read model %s)", settings.host, settings.port, where,
             settings.read_model_url.split("@")[-1])


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening socket that other processes may bind too (SO_REUSEPORT, Linux/BSD)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(False)
    return sock


def _start_sibling(settings: Settings) -> subprocess.Popen:
    """Another `runledger serve` on the same port; inherits the environment (Kafka, database)."""
    trusted = ["--forwarded-allow-ips", settings.forwarded_allow_ips] if settings.forwarded_allow_ips else []
    return subprocess.Popen([sys.executable, "-m", "services.cli", "serve", "--host", settings.host,
                             "--port", str(settings.port), "--data-dir", str(settings.data_dir), *trusted,
                             "--sibling"])


async def _stop_siblings(siblings: list[subprocess.Popen], grace: Grace) -> None:
    """They got SIGTERM with this process and stop within their own grace; wait for them
    until FINISHED of ours, then kill what is left."""
    for proc in siblings:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = asyncio.get_running_loop().time() + grace.left(FINISHED)
    while any(proc.poll() is None for proc in siblings) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    for proc in siblings:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class _ProcessHeader:
    """Adds `x-runledger-process: <pid>` to every HTTP answer: which of the processes sharing
    the port answered (operators and the --workers test read it)."""

    def __init__(self, app):
        self.app = app
        self.pid = str(os.getpid()).encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_pid(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (PROCESS_HEADER, self.pid)]
            await send(message)

        return await self.app(scope, receive, send_with_pid)
