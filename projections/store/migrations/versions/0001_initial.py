"""The read model as of the first release: runs, documents, targets, experiments, blocks,
the event index, checkpoints, dead letters and API keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.Text, primary_key=True),
        sa.Column("org_id", sa.Text, nullable=False),
        sa.Column("experiment_id", sa.Text, nullable=False),
        sa.Column("workflow_id", sa.Text, nullable=False),
        sa.Column("block_id", sa.Text, nullable=False),
        sa.Column("trigger_type", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS),
        sa.Column("completed_at", TS),
        sa.Column("score", sa.Float),
        sa.Column("state", sa.JSON, nullable=False),
    )
    op.create_index("ix_runs_org_created", "runs", ["org_id", "created_at", "run_id"])
    op.create_index("ix_runs_experiment", "runs", ["experiment_id", "created_at"])

    op.create_table(
        "run_documents",
        sa.Column("run_id", sa.Text, primary_key=True),
        sa.Column("document_id", sa.Text, primary_key=True),
        sa.Column("result_id", sa.String(64), nullable=False, unique=True),
        sa.Column("org_id", sa.Text, nullable=False),
        sa.Column("idx", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("score", sa.Float),
        sa.Column("state", sa.JSON, nullable=False),
    )
    op.create_index("ix_run_documents_order", "run_documents", ["run_id", "idx"])

    op.create_table(
        "document_targets",
        sa.Column("run_id", sa.Text, primary_key=True),
        sa.Column("document_id", sa.Text, primary_key=True),
        sa.Column("path", sa.Text, primary_key=True),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("value", sa.JSON),
        sa.Column("rows", sa.JSON, nullable=False),
    )

    op.create_table(
        "experiments",
        sa.Column("experiment_id", sa.Text, primary_key=True),
        sa.Column("org_id", sa.Text, nullable=False),
        sa.Column("workflow_id", sa.Text, nullable=False),
        sa.Column("block_id", sa.Text, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("state", sa.JSON, nullable=False),
    )
    op.create_index("ix_experiments_org_workflow", "experiments", ["org_id", "workflow_id", "created_at"])

    op.create_table(
        "blocks",
        sa.Column("block_key", sa.Text, primary_key=True),
        sa.Column("org_id", sa.Text, nullable=False),
        sa.Column("state", sa.JSON, nullable=False),
    )

    op.create_table(
        "event_index",
        sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("offset", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("aggregate_id", sa.Text, nullable=False),
        sa.Column("org_id", sa.Text, nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("producer", sa.Text, nullable=False),
        sa.Column("accepted", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("body", sa.JSON, nullable=False),
    )
    op.create_index("ix_event_index_aggregate", "event_index", ["aggregate_id", "partition", "offset"])
    op.create_index("ix_event_index_event_id", "event_index", ["event_id"])

    op.create_table(
        "checkpoints",
        sa.Column("projection", sa.String(64), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
    )

    op.create_table(
        "dead_letters",
        sa.Column("projection", sa.String(64), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("offset", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("key", sa.Text),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("value", sa.LargeBinary, nullable=False),
    )

    op.create_table(
        "api_keys",
        sa.Column("key_hash", sa.String(64), primary_key=True),
        sa.Column("org_id", sa.Text, nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("created_at", TS, nullable=False),
    )


def downgrade() -> None:
    for table in ("api_keys", "dead_letters", "checkpoints", "event_index", "blocks", "experiments",
                  "document_targets", "run_documents", "runs"):
        op.drop_table(table)  # their indexes go with them
