"""Configuration from the environment (and CLI flags). The embedded default needs none."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_API_URL = "http://127.0.0.1:8000"
"""Where the CLI's HTTP clients (worker, demo, runs) find the server unless told."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path(".runledger")
    kafka_bootstrap: str | None = None
    database_url: str | None = None
    topic: str = "runledger.events"
    partitions: int = 6
    replication_factor: int = 1
    min_insync_replicas: int | None = None  # None: events.kafka_log.default_min_insync_replicas
    bootstrap_key: str | None = None
    projector: bool = True
    wait_timeout: float = 10.0
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 8 * 1024 * 1024
    heartbeat_interval: float = 2.0  # projector heartbeats (projections/runtime/heartbeat.py)
    heartbeat_ttl: float = 10.0  # a member silent for longer is dead to /healthz
    fold_processes: int = 1  # the projector's fold (consensus) pool; 0: a worker thread instead
    # Bounded waits on dependencies (issue 18): past them a request answers 503 `unavailable`,
    # the projector retries. Shutdown graces can count on them (one place).
    kafka_timeout: float = 10.0  # an append's send and acks; an end-offsets or read request
    postgres_timeout: float = 10.0  # a statement, a connect, a pool checkout
    sqlite_busy_timeout: float = 5.0  # a lock another connection holds on a SQLite file
    cookie_secure: str = "auto"  # the console's cookies: auto | true | false (services/console/session.py)
    session_idle_timeout: float = 12 * 3600.0  # a console session unused this long ends
    session_max_age: float = 7 * 86400.0  # a console session ends this long after sign-in, used or not
    forwarded_allow_ips: str | None = None  # proxies whose X-Forwarded-Proto/For uvicorn trusts
    shutdown_grace: float = 15.0  # seconds from SIGTERM to exit, whatever is unreachable (services/shutdown.py)
    verify_processes: int = 1  # verification jobs' worker processes (services/verifications.py)
    notary_key_file: Path | None = None  # the Ed25519 signing key (PEM); unset: services/notary.py decides
    digest_interval: float = 3600.0  # seconds between signed heads published on the log; 0: never
    read_cache_mb: int = 64  # the API's cache of rendered reads (services/api/read_cache.py); 0: off
    read_cache_ttl: float = 2.0  # its answers' greatest age (the bound for changes nobody announced)
    bulk_flush_records: int = 10_000  # a catch-up's flush (projections/runtime/bulk.py)
    bulk_cache_mb: int = 96  # a catch-up's kept aggregates, estimated
    live_cache_mb: int = 64  # the runs a live projector keeps between batches, estimated; 0: off
    gc_sweep_seconds: float = 600.0  # survivors of full collections frozen, all swept this often; 0: CPython's own
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            data_dir=Path(env.get("RUNLEDGER_DATA_DIR", ".runledger")),
            kafka_bootstrap=env.get("RUNLEDGER_KAFKA_BOOTSTRAP") or None,
            database_url=env.get("RUNLEDGER_DATABASE_URL") or None,
            topic=env.get("RUNLEDGER_TOPIC", "runledger.events"),
            partitions=int(env.get("RUNLEDGER_PARTITIONS", "6")),
            replication_factor=int(env.get("RUNLEDGER_REPLICATION_FACTOR", "1")),
            min_insync_replicas=int(env.get("RUNLEDGER_MIN_INSYNC_REPLICAS") or 0) or None,
            bootstrap_key=env.get("RUNLEDGER_BOOTSTRAP_KEY") or None,
            wait_timeout=float(env.get("RUNLEDGER_WAIT_TIMEOUT", "10")),
            max_body_bytes=int(env.get("RUNLEDGER_MAX_BODY_BYTES", str(8 * 1024 * 1024))),
            heartbeat_interval=float(env.get("RUNLEDGER_HEARTBEAT_INTERVAL", "2")),
            heartbeat_ttl=float(env.get("RUNLEDGER_HEARTBEAT_TTL", "10")),
            fold_processes=int(env.get("RUNLEDGER_FOLD_PROCESSES", "1")),
            kafka_timeout=float(env.get("RUNLEDGER_KAFKA_TIMEOUT", "10")),
            postgres_timeout=float(env.get("RUNLEDGER_POSTGRES_TIMEOUT", "10")),
            sqlite_busy_timeout=float(env.get("RUNLEDGER_SQLITE_BUSY_TIMEOUT", "5")),
            cookie_secure=_choice(env, "RUNLEDGER_COOKIE_SECURE", ("auto", "true", "false")),
            session_idle_timeout=float(env.get("RUNLEDGER_SESSION_IDLE_TIMEOUT", "43200")),
            session_max_age=float(env.get("RUNLEDGER_SESSION_MAX_AGE", "604800")),
            forwarded_allow_ips=env.get("RUNLEDGER_FORWARDED_ALLOW_IPS") or None,
            shutdown_grace=float(env.get("RUNLEDGER_SHUTDOWN_GRACE", "15")),
            verify_processes=int(env.get("RUNLEDGER_VERIFY_PROCESSES", "1")),
            notary_key_file=Path(env["RUNLEDGER_NOTARY_KEY_FILE"]) if env.get("RUNLEDGER_NOTARY_KEY_FILE") else None,
            digest_interval=float(env.get("RUNLEDGER_DIGEST_INTERVAL", "3600")),
            read_cache_mb=int(env.get("RUNLEDGER_READ_CACHE_MB", "64")),
            read_cache_ttl=float(env.get("RUNLEDGER_READ_CACHE_TTL", "2")),
            bulk_flush_records=int(env.get("RUNLEDGER_BULK_FLUSH_RECORDS", "10000")),
            bulk_cache_mb=int(env.get("RUNLEDGER_BULK_CACHE_MB", "96")),
            live_cache_mb=int(env.get("RUNLEDGER_LIVE_CACHE_MB", "64")),
            gc_sweep_seconds=float(env.get("RUNLEDGER_GC_SWEEP_SECONDS", "600")),
        )

    @property
    def longest_dependency_wait(self) -> float:
        """The longest one wait on a dependency can last (seconds): what a shutdown grace
        must leave a request in flight. PostgreSQL's client backstop is 2 s past its
        statement timeout (projections/store/database.py)."""
        return max(self.kafka_timeout, self.postgres_timeout + 2.0, self.sqlite_busy_timeout)

    @property
    def store_timeouts(self):
        """projections.store.database.StoreTimeouts of these settings."""
        from projections.store.database import StoreTimeouts
        return StoreTimeouts(postgres=self.postgres_timeout, sqlite_busy=self.sqlite_busy_timeout)

    def catch_up(self):
        """A projector's bulk mode as configured (projections/runtime/bulk.py)."""
        from projections.runtime.bulk import CatchUp

        return CatchUp(flush_records=self.bulk_flush_records, cache_budget=self.bulk_cache_mb * 2**20)

    def live_cache(self):
        """The runs a live projector keeps between batches (projections/runtime/bulk.py), or None."""
        from projections.runtime.bulk import LiveCache

        return LiveCache(self.live_cache_mb * 2**20) if self.live_cache_mb > 0 else None

    def with_(self, **changes) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def embedded(self) -> bool:
        return self.kafka_bootstrap is None

    @property
    def read_model_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'readmodel.db'}"

    @property
    def control_url(self) -> str:
        """API keys and idempotency records (projections/store/control.py): their own SQLite file
        on the embedded default, the read model's database on PostgreSQL."""
        if self.database_url and not self.database_url.startswith("sqlite"):
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'control.db'}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "log.db"


def _choice(env, name: str, allowed: tuple[str, ...]) -> str:
    value = (env.get(name) or allowed[0]).strip().lower()
    if value not in allowed:
        raise ValueError(f"{name}={value!r}: one of {', '.join(allowed)}")
    return value
