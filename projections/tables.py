"""The read model: SQLAlchemy Core tables, dialect-neutral (SQLite and PostgreSQL)."""
from __future__ import annotations

from sqlalchemy import (
    JSON, BigInteger, Boolean, Column, DateTime, Float, Index, Integer, LargeBinary, MetaData, String,
    Table, Text, UniqueConstraint,
)

metadata = MetaData()
TS = DateTime(timezone=True)

runs = Table(
    "runs", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("org_id", String(128), nullable=False),
    Column("experiment_id", String(64), nullable=False),
    Column("workflow_id", String(256), nullable=False),
    Column("block_id", String(256), nullable=False),
    Column("trigger_type", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("started_at", TS),
    Column("completed_at", TS),
    Column("score", Float),
    Column("state", JSON, nullable=False),
    Index("ix_runs_org_created", "org_id", "created_at", "run_id"),
    Index("ix_runs_experiment", "experiment_id", "created_at"),
)

run_documents = Table(
    "run_documents", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("document_id", String(128), primary_key=True),
    Column("result_id", String(64), nullable=False, unique=True),
    Column("org_id", String(128), nullable=False),
    Column("idx", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("score", Float),
    Column("state", JSON, nullable=False),
    Index("ix_run_documents_order", "run_id", "idx"),
)

document_targets = Table(
    "document_targets", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("document_id", String(128), primary_key=True),
    Column("path", String(512), primary_key=True),
    Column("score", Float, nullable=False),
    Column("value", JSON),
    Column("rows", JSON, nullable=False),
)

experiments = Table(
    "experiments", metadata,
    Column("experiment_id", String(64), primary_key=True),
    Column("org_id", String(128), nullable=False),
    Column("workflow_id", String(256), nullable=False),
    Column("block_id", String(256), nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("state", JSON, nullable=False),
    Index("ix_experiments_org_workflow", "org_id", "workflow_id", "created_at"),
)

blocks = Table(
    "blocks", metadata,
    Column("block_key", String(640), primary_key=True),
    Column("org_id", String(128), nullable=False),
    Column("state", JSON, nullable=False),
)

event_index = Table(
    "event_index", metadata,
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("offset", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", String(36), nullable=False),
    Column("aggregate_id", String(640), nullable=False),
    Column("org_id", String(128), nullable=False),
    Column("type", String(64), nullable=False),
    Column("occurred_at", TS, nullable=False),
    Column("producer", String(256), nullable=False),
    Column("accepted", Boolean, nullable=False),
    Column("reason", Text),
    Column("body", JSON, nullable=False),
    Index("ix_event_index_aggregate", "aggregate_id", "partition", "offset"),
    Index("ix_event_index_event_id", "event_id"),
)

checkpoints = Table(
    "checkpoints", metadata,
    Column("projection", String(64), primary_key=True),
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("next_offset", BigInteger, nullable=False),
)

dead_letters = Table(
    "dead_letters", metadata,
    Column("projection", String(64), primary_key=True),
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("offset", BigInteger, primary_key=True, autoincrement=False),
    Column("key", String(640)),
    Column("reason", Text, nullable=False),
    Column("value", LargeBinary, nullable=False),
)

api_keys = Table(
    "api_keys", metadata,
    Column("key_hash", String(64), primary_key=True),
    Column("org_id", String(128), nullable=False),
    Column("name", String(128)),
    Column("created_at", TS, nullable=False),
    UniqueConstraint("key_hash"),
)
