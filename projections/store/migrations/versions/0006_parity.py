"""event_index.body nullable: a rejected event's body is kept only in the log.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

Downgrade restores NOT NULL, which fails while the index holds rejected events without a
body: rebuild the read model with the older projector (a replay) before downgrading.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("event_index", "body", existing_type=sa.JSON(), nullable=True)


def downgrade() -> None:
    op.alter_column("event_index", "body", existing_type=sa.JSON(), nullable=False)
