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
    bootstrap_key: str | None = None
    projector: bool = True
    wait_timeout: float = 10.0
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 8 * 1024 * 1024
    heartbeat_interval: float = 2.0  # projector heartbeats (projections/runtime/heartbeat.py)
    heartbeat_ttl: float = 10.0  # a member silent for longer is dead to /healthz
    fold_processes: int = 1  # the projector's fold (consensus) pool; 0: a worker thread instead
    bulk_flush_records: int = 10_000  # a catch-up's flush (projections/runtime/bulk.py)
    bulk_cache_mb: int = 96  # a catch-up's kept aggregates, estimated
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
            bootstrap_key=env.get("RUNLEDGER_BOOTSTRAP_KEY") or None,
            wait_timeout=float(env.get("RUNLEDGER_WAIT_TIMEOUT", "10")),
            max_body_bytes=int(env.get("RUNLEDGER_MAX_BODY_BYTES", str(8 * 1024 * 1024))),
            heartbeat_interval=float(env.get("RUNLEDGER_HEARTBEAT_INTERVAL", "2")),
            heartbeat_ttl=float(env.get("RUNLEDGER_HEARTBEAT_TTL", "10")),
            fold_processes=int(env.get("RUNLEDGER_FOLD_PROCESSES", "1")),
            bulk_flush_records=int(env.get("RUNLEDGER_BULK_FLUSH_RECORDS", "10000")),
            bulk_cache_mb=int(env.get("RUNLEDGER_BULK_CACHE_MB", "96")),
        )

    def catch_up(self):
        """A projector's bulk mode as configured (projections/runtime/bulk.py)."""
        from projections.runtime.bulk import CatchUp

        return CatchUp(flush_records=self.bulk_flush_records, cache_budget=self.bulk_cache_mb * 2**20)

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
