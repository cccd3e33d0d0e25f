"""Real Kafka and PostgreSQL servers for tests, via scripts/kafka.sh and scripts/postgres.sh.

No pytest dependency: use these from session-scoped fixtures, e.g.::

    @pytest.fixture(scope="session")
    def kafka(tmp_path_factory):
        with kafka_broker(tmp_path_factory.mktemp("kafka")) as broker:
            yield broker          # broker.bootstrap == "127.0.0.1:<port>"

    @pytest.fixture(scope="session")
    def pg_url(tmp_path_factory):
        with postgres_server(tmp_path_factory.mktemp("pg")) as url:
            yield url             # "postgresql+asyncpg://runledger@127.0.0.1:<port>/runledger"

A cluster of brokers, each of which can be killed, paused and brought back::

    with kafka_cluster(tmp_path / "cluster", nodes=3) as cluster:
        cluster.bootstrap            # "127.0.0.1:<p1>,127.0.0.1:<p2>,127.0.0.1:<p3>"
        cluster.nodes[1].kill()      # SIGKILL; .start() brings it back on its port and data
        cluster.nodes[2].pause()     # SIGSTOP: it hangs; .resume() is SIGCONT

The context managers always stop their servers on exit, including when the
body (or the start itself) raises; an atexit hook is the last resort for a
context that was never closed. See docs/testing.md.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["BrokerHandle", "ClusterHandle", "InfraError", "kafka_broker", "kafka_cluster", "postgres_server",
           "restart_postgres", "stop_postgres", "REPO_ROOT"]

REPO_ROOT = Path(__file__).resolve().parents[1]
KAFKA_SH = REPO_ROOT / "scripts" / "kafka.sh"
POSTGRES_SH = REPO_ROOT / "scripts" / "postgres.sh"

# First install downloads ~100 MB from Maven Central (or apt for PostgreSQL).
INSTALL_TIMEOUT = 1200.0
# kafka.sh waits up to 90 s for readiness itself (KAFKA_START_TIMEOUT); plus format etc.
START_TIMEOUT = 240.0
STOP_TIMEOUT = 90.0


class InfraError(RuntimeError):
    """A helper script failed; the message carries its stderr (log tails included)."""


def _run(script: Path, *args: str, timeout: float) -> str:
    cmd = ["bash", str(script), *args]
    try:
        proc = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO_ROOT,
        )
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr
        raise InfraError(f"{' '.join(cmd)} timed out after {timeout:.0f}s\n{err or ''}") from None
    if proc.returncode != 0:
        raise InfraError(f"{' '.join(cmd)} failed with exit code {proc.returncode}\n{proc.stderr}")
    return proc.stdout.strip()


# Servers started by this process and not yet stopped: stopped at interpreter exit
# if a context manager never got to run its cleanup. A cluster's directory carries _CLUSTER.
_live: dict[tuple[Path, str], None] = {}
_CLUSTER = "#cluster"
_live_lock = threading.Lock()


def _track(script: Path, directory: str) -> None:
    with _live_lock:
        _live[(script, directory)] = None


def _untrack(script: Path, directory: str) -> None:
    with _live_lock:
        _live.pop((script, directory), None)


@atexit.register
def _stop_leftovers() -> None:
    with _live_lock:
        leftovers = list(_live)
        _live.clear()
    for script, directory in leftovers:
        try:
            _run(script, "stop-cluster" if directory.endswith(_CLUSTER) else "stop", directory.removesuffix(_CLUSTER),
                 timeout=STOP_TIMEOUT)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


class BrokerHandle:
    """A running single-node Kafka broker (KRaft) on loopback.

    ``bootstrap`` ("127.0.0.1:<port>") never changes, not even across
    ``restart()``: data dir and port are kept, so clients reconnect to the
    same address.
    """

    def __init__(self, directory: Path, bootstrap: str) -> None:
        self.directory = directory
        self.bootstrap = bootstrap

    def __repr__(self) -> str:
        return f"BrokerHandle(bootstrap={self.bootstrap!r}, directory={str(self.directory)!r})"

    def stop(self) -> None:
        """Stop the broker (SIGTERM, SIGKILL after 20 s). Idempotent."""
        _run(KAFKA_SH, "stop", str(self.directory), timeout=STOP_TIMEOUT)
        _untrack(KAFKA_SH, str(self.directory))

    def start(self) -> str:
        """Start a stopped broker again on the same port and data."""
        _track(KAFKA_SH, str(self.directory))
        bootstrap = _run(KAFKA_SH, "start", str(self.directory), timeout=START_TIMEOUT)
        self._check_same(bootstrap)
        return bootstrap

    def kill(self) -> None:
        """SIGKILL, as in a crash: no clean shutdown. `start()` brings it back."""
        _run(KAFKA_SH, "kill", str(self.directory), timeout=STOP_TIMEOUT)

    def pause(self) -> None:
        """SIGSTOP: the broker hangs; its connections stay open and nothing answers."""
        _run(KAFKA_SH, "pause", str(self.directory), timeout=STOP_TIMEOUT)

    def resume(self) -> None:
        """SIGCONT after `pause()`."""
        _run(KAFKA_SH, "resume", str(self.directory), timeout=STOP_TIMEOUT)

    def restart(self) -> str:
        """Stop then start on the same port and data dir; returns when it serves metadata."""
        _track(KAFKA_SH, str(self.directory))
        bootstrap = _run(KAFKA_SH, "restart", str(self.directory), timeout=STOP_TIMEOUT + START_TIMEOUT)
        self._check_same(bootstrap)
        return bootstrap

    def _check_same(self, bootstrap: str) -> None:
        if bootstrap != self.bootstrap:
            raise InfraError(f"broker came back on {bootstrap}, expected {self.bootstrap}")


@contextmanager
def kafka_broker(tmp_dir: str | os.PathLike[str]) -> Iterator[BrokerHandle]:
    """Start a Kafka broker whose files live in ``tmp_dir``; always stopped on exit."""
    directory = Path(tmp_dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    _run(KAFKA_SH, "install", timeout=INSTALL_TIMEOUT)
    _track(KAFKA_SH, str(directory))
    try:
        bootstrap = _run(KAFKA_SH, "start", str(directory), timeout=START_TIMEOUT)
        yield BrokerHandle(directory, bootstrap)
    finally:
        try:
            _run(KAFKA_SH, "stop", str(directory), timeout=STOP_TIMEOUT)
        finally:
            _untrack(KAFKA_SH, str(directory))


class ClusterHandle:
    """A running cluster of KRaft nodes (each broker and controller) on loopback: replication
    factor 3 and min.insync.replicas 2 for new topics and the internal ones (with 3 nodes or
    more). Each node is a BrokerHandle of its own (kill, pause, resume, start, stop)."""

    def __init__(self, directory: Path, bootstrap: str) -> None:
        self.directory = directory
        self.bootstrap = bootstrap
        self.nodes = [BrokerHandle(directory / f"node{i + 1}", address) for i, address in enumerate(bootstrap.split(","))]

    def __repr__(self) -> str:
        return f"ClusterHandle(bootstrap={self.bootstrap!r}, directory={str(self.directory)!r})"


@contextmanager
def kafka_cluster(tmp_dir: str | os.PathLike[str], nodes: int = 3) -> Iterator[ClusterHandle]:
    """Start a cluster of `nodes` Kafka nodes whose files live in ``tmp_dir``; always stopped on exit."""
    directory = Path(tmp_dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    _run(KAFKA_SH, "install", timeout=INSTALL_TIMEOUT)
    tracked = str(directory) + _CLUSTER
    _track(KAFKA_SH, tracked)
    try:
        bootstrap = _run(KAFKA_SH, "start-cluster", str(directory), str(nodes), timeout=START_TIMEOUT)
        yield ClusterHandle(directory, bootstrap)
    finally:
        try:
            _run(KAFKA_SH, "stop-cluster", str(directory), timeout=STOP_TIMEOUT)
        finally:
            _untrack(KAFKA_SH, tracked)


@contextmanager
def postgres_server(tmp_dir: str | os.PathLike[str]) -> Iterator[str]:
    """Start a fresh PostgreSQL cluster for ``tmp_dir``; yields its SQLAlchemy URL.

    The URL is ``postgresql+asyncpg://runledger@127.0.0.1:<port>/runledger``
    (trust auth, superuser ``runledger``). Always stopped on exit.
    """
    directory = Path(tmp_dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    _run(POSTGRES_SH, "install", timeout=INSTALL_TIMEOUT)
    _track(POSTGRES_SH, str(directory))
    try:
        yield _run(POSTGRES_SH, "start", str(directory), timeout=START_TIMEOUT)
    finally:
        try:
            _run(POSTGRES_SH, "stop", str(directory), timeout=STOP_TIMEOUT)
        finally:
            _untrack(POSTGRES_SH, str(directory))


def restart_postgres(tmp_dir: str | os.PathLike[str]) -> str:
    """Restart the cluster ``postgres_server(tmp_dir)`` started: same data, same port;
    every open connection is dropped. Returns the (unchanged) URL."""
    return _run(POSTGRES_SH, "restart", str(Path(tmp_dir).resolve()), timeout=STOP_TIMEOUT + START_TIMEOUT)


def stop_postgres(tmp_dir: str | os.PathLike[str]) -> None:
    """Stop the cluster ``postgres_server(tmp_dir)`` started (its connections refused from now
    on); the context manager's own stop at exit is then a no-op."""
    _run(POSTGRES_SH, "stop", str(Path(tmp_dir).resolve()), timeout=STOP_TIMEOUT)
