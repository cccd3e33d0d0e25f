"""runs.summary, experiments.freshness, blocks.execution: what the metrics summary reads,
written by the projector beside the state (projections/store/read_columns.py).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29

No backfill: rows written before this revision keep NULL, and the API reads those from
`state` as before (services/api/routes/metrics.py). `runledger rebuild` (a new read-model
version) fills every row; an aggregate's next event fills its own.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("summary", sa.Text(), nullable=True))
    op.add_column("experiments", sa.Column("freshness", sa.Text(), nullable=True))
    op.add_column("blocks", sa.Column("execution", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("blocks", "execution")
    op.drop_column("experiments", "freshness")
    op.drop_column("runs", "summary")
