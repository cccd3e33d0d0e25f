"""A run's history, bounded per request (issue 17): the event index's place, size, pass fact, counters and delivery count per row; history heads, run snapshots and the
repeated deliveries of accepted events (projections/runtime/history_index.py).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05

The event index's `document_id` came with 0011 (its metrics reads fill it for old rows).
No backfill: rows written before this revision keep NULL, and an aggregate indexed before
it stays untracked (its history pages by offset as before; time travel on it folds from
its first event, as before). `runledger rebuild` (a new read-model version) fills every
row, and `runledger rebuild --run RUN_ID` one run's.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_COLUMNS = [
    sa.Column("seq", sa.BigInteger(), nullable=True),
    sa.Column("size", sa.Integer(), nullable=True),
    sa.Column("pass_fact", sa.Integer(), nullable=True),
    sa.Column("counters", sa.JSON(), nullable=True),
    sa.Column("deliveries", sa.Integer(), nullable=True),
    sa.Column("last_offset", sa.BigInteger(), nullable=True),
]
_INDEXES = {
    "ix_event_index_seq": ["aggregate_id", "seq"],
    "ix_event_index_type": ["aggregate_id", "type", "partition", "offset"],
    "ix_event_index_outcome": ["aggregate_id", "accepted", "partition", "offset"],
}


def upgrade() -> None:
    for column in _COLUMNS:
        op.add_column("event_index", column)
    for name, columns in _INDEXES.items():
        op.create_index(name, "event_index", columns)
    op.create_index("ix_event_index_facts", "event_index", ["aggregate_id", "document_id", "pass_fact"],
                    postgresql_where=sa.text("pass_fact IS NOT NULL"))
    op.create_table(
        "history_heads",
        sa.Column("aggregate_id", sa.Text(), primary_key=True),
        sa.Column("next_seq", sa.BigInteger(), nullable=True),
        sa.Column("pass_facts", sa.BigInteger(), nullable=False),
        sa.Column("high_water", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "run_snapshots",
        sa.Column("run_id", sa.Text(), primary_key=True),
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("high_water", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.JSON(), nullable=True),
    )
    op.create_index("ix_run_snapshots_time", "run_snapshots", ["run_id", "high_water", "seq"])
    op.create_table(
        "event_deliveries",
        sa.Column("partition", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("offset", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("aggregate_id", sa.Text(), nullable=False),
        sa.Column("event_offset", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_event_deliveries_aggregate", "event_deliveries", ["aggregate_id", "offset"])


def downgrade() -> None:
    op.drop_table("event_deliveries")
    op.drop_table("run_snapshots")
    op.drop_table("history_heads")
    op.drop_index("ix_event_index_facts", "event_index")
    for name in _INDEXES:
        op.drop_index(name, "event_index")
    for column in reversed(_COLUMNS):
        op.drop_column("event_index", column.name)
