"""Projector resilience: quarantined runs, parked events, projector heartbeats.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "quarantined",
        sa.Column("projection", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("aggregate_id", sa.Text, primary_key=True),
        sa.Column("org_id", sa.Text, nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("parked", sa.Integer, nullable=False),
        sa.Column("quarantined_at", TS, nullable=False),
    )
    op.create_table(
        "parked_events",
        sa.Column("projection", sa.String(64), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("offset", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("aggregate_id", sa.Text, nullable=False),
        sa.Column("key", sa.Text),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_parked_events_aggregate", "parked_events", ["projection", "aggregate_id", "offset"])
    op.create_table(
        "projector_heartbeats",
        sa.Column("member_id", sa.String(96), primary_key=True),
        sa.Column("projection", sa.String(64), nullable=False),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("partitions", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("applied", sa.BigInteger, nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("beat_at", TS, nullable=False),
        sa.Column("last_batch_at", TS),
    )


def downgrade() -> None:
    op.drop_table("projector_heartbeats")
    op.drop_index("ix_parked_events_aggregate", "parked_events")
    op.drop_table("parked_events")
    op.drop_table("quarantined")
