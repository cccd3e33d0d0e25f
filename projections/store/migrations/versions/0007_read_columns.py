"""runs.resource: the rendered run resource, written by the projector beside the state.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29

No backfill: rows written before this revision keep NULL, and the API renders those
from `state` as before (projections/store/views.py). `runledger rebuild` (a new read-model
version) fills every row; a run's next event fills its own.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("resource", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("runs", "resource")
