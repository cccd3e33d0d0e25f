"""The read model: SQLAlchemy Core tables, dialect-neutral (SQLite and PostgreSQL).

Strings that come from outside (ids, names, paths) are unbounded `Text`: SQLite never
enforced VARCHAR lengths, and a limit only PostgreSQL enforces would stop a partition
there on input the embedded default accepts. Limits belong to the event contract.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON, BigInteger, Boolean, Column, DateTime, Float, Index, Integer, LargeBinary, MetaData, String, Table, Text,
    TypeDecorator
)


class UtcDateTime(TypeDecorator):
    """Aware UTC datetimes in and out, on every backend.

    PostgreSQL's timestamptz answers aware values, SQLite's text answers naive ones;
    naive input (a query filter like `?from_date=2026-01-01`) means UTC. SQLite stores
    the UTC wall time, so its text order is time order.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        return as_utc(value)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return as_utc(value)


def as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class NulFreeText(TypeDecorator):
    """Free text derived from input (reasons, dead-letter keys, target paths). PostgreSQL
    text cannot hold NUL, so it is stored as U+FFFD, on every backend alike."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect) -> str | None:
        return value.replace("\x00", "\ufffd") if value else value


metadata = MetaData()
TS = UtcDateTime()

runs = Table(
    "runs", metadata,
    Column("run_id", Text, primary_key=True),
    Column("org_id", Text, nullable=False),
    Column("experiment_id", Text, nullable=False),
    Column("workflow_id", Text, nullable=False),
    Column("block_id", Text, nullable=False),
    Column("trigger_type", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("started_at", TS),
    Column("completed_at", TS),
    Column("score", Float),
    Column("state", JSON, nullable=False),
    Column("resource", Text),  # the rendered run resource (projections/store/read_columns.py; migration 0007)
    Column("summary", Text),  # what its metrics summary shows (read_columns.run_summary; migration 0008)
    Column("version", BigInteger),  # +1 at every write of the row (projections/store/row_versions.py; 0013)
    Column("passes", Integer),  # pass facts recorded over its documents (row_versions; NULL: before 0013)
    # The RunCreated payload, written once with the row: it grows with the run's documents and
    # never changes, so `state` leaves it out and a batch does not write it again (0015).
    Column("spec", JSON),
    # Its documents' filenames by id, in document order, as the metrics summary lists them:
    # rendered once with the row, like the spec, instead of in `summary` at every write (0016).
    Column("filenames", Text),
    Index("ix_runs_org_created", "org_id", "created_at", "run_id"),
    Index("ix_runs_experiment", "experiment_id", "created_at"),
)

run_documents = Table(
    "run_documents", metadata,
    Column("run_id", Text, primary_key=True),
    Column("document_id", Text, primary_key=True),
    Column("result_id", String(64), nullable=False, unique=True),
    Column("org_id", Text, nullable=False),
    Column("idx", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("score", Float),
    Column("state", JSON, nullable=False),
    Column("version", BigInteger),  # the run's version when this row was last written (row_versions; 0013)
    Index("ix_run_documents_order", "run_id", "idx"),
)

document_targets = Table(
    "document_targets", metadata,
    Column("run_id", Text, primary_key=True),
    Column("document_id", Text, primary_key=True),
    Column("path", NulFreeText, primary_key=True),
    Column("score", Float, nullable=False),
    Column("value", JSON),
    Column("rows", JSON, nullable=False),
    # Classifier and split targets: which consensus label `value` is, as a digest
    # (projections/store/target_labels.py; migration 0011), so `by_target` reads one label's rows.
    Column("label_hash", String(64)),
    Index("ix_document_targets_path", "run_id", "path"),  # by_target: one path's rows of a run
    Index("ix_document_targets_label", "run_id", "label_hash"),
)

experiments = Table(
    "experiments", metadata,
    Column("experiment_id", Text, primary_key=True),
    Column("org_id", Text, nullable=False),
    Column("workflow_id", Text, nullable=False),
    Column("block_id", Text, nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("state", JSON, nullable=False),
    Column("freshness", Text),  # read_columns.experiment_freshness (migration 0008)
    Column("card", Text),  # read_columns.experiment_card: the resource's own fields, no document list (0011)
    Index("ix_experiments_org_workflow", "org_id", "workflow_id", "created_at"),
)

blocks = Table(
    "blocks", metadata,
    Column("block_key", Text, primary_key=True),
    Column("org_id", Text, nullable=False),
    Column("state", JSON, nullable=False),
    Column("execution", Text),  # read_columns.block_execution (migration 0008)
)

event_index = Table(
    "event_index", metadata,
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("offset", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", String(36), nullable=False),
    Column("aggregate_id", Text, nullable=False),
    Column("org_id", Text, nullable=False),
    Column("type", String(64), nullable=False),
    Column("occurred_at", TS, nullable=False),
    Column("producer", Text, nullable=False),
    Column("accepted", Boolean, nullable=False),
    Column("reason", NulFreeText),
    Column("body", JSON),  # NULL for a rejected event: its body is only in the log (migration 0006)
    # The run's history, bounded per request (issue 17; projections/runtime/history_index.py,
    # migration 0012). NULL in rows written before it (`runledger rebuild` fills them).
    Column("document_id", Text),  # the document a pass event names (migration 0011): one document's events
    Column("seq", BigInteger),  # the row's place in its aggregate's history, from 0
    Column("size", Integer),  # bytes of the record on the log: a page is fitted to a byte budget before decoding
    Column("pass_fact", Integer),  # the pass index, when the fold recorded this event as that pass's fact
    Column("counters", JSON),  # a run's [status, done, failed, passes] after this event (the console timeline)
    Column("deliveries", Integer),  # an accepted event that reached the log again: how many times (NULL: once)
    Column("last_offset", BigInteger),  # ... and where it last did (same partition)
    Index("ix_event_index_aggregate", "aggregate_id", "partition", "offset"),
    Index("ix_event_index_event_id", "event_id"),
    Index("ix_event_index_document", "aggregate_id", "document_id", "offset"),
    Index("ix_event_index_seq", "aggregate_id", "seq"),
    Index("ix_event_index_type", "aggregate_id", "type", "partition", "offset"),
    Index("ix_event_index_outcome", "aggregate_id", "accepted", "partition", "offset"),
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
    Column("key", NulFreeText),
    Column("reason", NulFreeText, nullable=False),
    Column("value", LargeBinary, nullable=False),
)

# API keys are not projected: they live in the control store (projections/store/control.py).

# -- projector resilience (migration 0003) ------------------------------------------
# A run (or experiment, block) whose fold or store raised deterministically on a valid
# event: quarantined with the error; its later events are parked until `retry_parked`.
quarantined = Table(
    "quarantined", metadata,
    Column("projection", String(64), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("aggregate_id", Text, primary_key=True),
    Column("org_id", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),  # the first event that could not be applied
    Column("error", NulFreeText, nullable=False),
    Column("parked", Integer, nullable=False),
    Column("quarantined_at", TS, nullable=False),
)

parked_events = Table(
    "parked_events", metadata,
    Column("projection", String(64), primary_key=True),
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("offset", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(16), nullable=False),
    Column("aggregate_id", Text, nullable=False),
    Column("key", NulFreeText),
    Column("value", LargeBinary, nullable=False),
    Column("timestamp_ms", BigInteger, nullable=False),
    Index("ix_parked_events_aggregate", "projection", "aggregate_id", "offset"),
)

# One row per live projector process (embedded task or `runledger project`), rewritten
# every few seconds: the API's health reads them, so every replica tells the truth.
projector_heartbeats = Table(
    "projector_heartbeats", metadata,
    Column("member_id", String(96), primary_key=True),
    Column("projection", String(64), nullable=False),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("partitions", JSON, nullable=False),
    Column("state", String(16), nullable=False),  # running | retrying | down
    Column("detail", NulFreeText),
    Column("applied", BigInteger, nullable=False),
    Column("started_at", TS, nullable=False),
    Column("beat_at", TS, nullable=False),
    Column("last_batch_at", TS),
)

# -- the notary (projections/notary; migration 0014) ---------------------------------
# Each partition's records are the leaves of an append-only Merkle tree (RFC 9162),
# stored as tiles of hashes (projections/notary/tiles.py) and rebuilt by replay like every
# projected row; the tree and the checkpoint commit in one transaction. A tree's size is
# where its last level-0 tile ends; its end offset follows from its last segment.
notary_tiles = Table(
    "notary_tiles", metadata,
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("level", Integer, primary_key=True, autoincrement=False),  # tile level L: nodes of height 4L
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hashes", LargeBinary, nullable=False),  # 1 to 16 SHA-256 hashes, 32 bytes each
)

notary_segments = Table(
    "notary_segments", metadata,
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("first_offset", BigInteger, primary_key=True, autoincrement=False),  # the first leaf's, and where offsets jump
    Column("first_leaf", BigInteger, nullable=False),
)

# -- live versions (migration 0013) ------------------------------------------------------
# Per organisation and partition: bumped once by each batch (of that partition) that changed
# the organisation's runs, experiments or blocks. The console's live token of an
# organisation is the sum over its partitions (projections/store/row_versions.py): one
# writer per row (the partition's projector), so no two projectors ever wait on each other.
org_versions = Table(
    "org_versions", metadata,
    Column("org_id", Text, primary_key=True),
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("version", BigInteger, nullable=False),
)

# -- a run's history, bounded per request (issue 17; migration 0012) ---------------------
# projections/runtime/history_index.py writes these with the batch; all are projected.

# Per aggregate, the running figures of its event index: the next row's `seq`, the pass
# facts so far and the latest event time so far. `next_seq` NULL: the aggregate's rows
# were indexed before 0012 (untracked until a rebuild or repair).
history_heads = Table(
    "history_heads", metadata,
    Column("aggregate_id", Text, primary_key=True),
    Column("next_seq", BigInteger),
    Column("pass_facts", BigInteger, nullable=False),
    Column("high_water", TS),
)

# A run as it was after its event `seq` (its RunCreated, and every SNAPSHOT_EVERY rows): the
# run's lifecycle scalars and pass count (projections/domain/snapshots.py), NULL before
# RunCreated. `high_water`: the latest event time up to it (time travel by time).
run_snapshots = Table(
    "run_snapshots", metadata,
    Column("run_id", Text, primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("high_water", TS, nullable=False),
    Column("state", JSON),
    Index("ix_run_snapshots_time", "run_id", "high_water", "seq"),
)

# Where the repeated deliveries of an accepted event are on the log (the event index keeps
# one row per event, with a count): what `verify` reads back to refold exactly.
event_deliveries = Table(
    "event_deliveries", metadata,
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("offset", BigInteger, primary_key=True, autoincrement=False),
    Column("aggregate_id", Text, nullable=False),
    Column("event_offset", BigInteger, nullable=False),  # the indexed row it repeats (same partition)
    Index("ix_event_deliveries_aggregate", "aggregate_id", "offset"),
)

# The pass facts of a run's documents, for folding a tail from a snapshot (a partial index:
# only rows that recorded a pass fact, at most n_consensus per document).
Index("ix_event_index_facts", event_index.c.aggregate_id, event_index.c.document_id, event_index.c.pass_fact,
      sqlite_where=event_index.c.pass_fact.isnot(None), postgresql_where=event_index.c.pass_fact.isnot(None))
