"""Idempotency records per API key (with the seed their command's ids derive from and a
lease), and the console's server-side sessions (issue 18).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01

`idempotency_keys` is made anew: its records are 24 hours of scratch, and an old record
has no key id or seed to carry over. A request retried across the upgrade runs again.
API keys are not touched.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.drop_table("idempotency_keys")
    op.create_table(
        "idempotency_keys",
        sa.Column("org_id", sa.Text, primary_key=True),
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("seed", sa.String(32), nullable=False),
        sa.Column("status", sa.Integer),
        sa.Column("body", sa.LargeBinary),
        sa.Column("headers", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("lease_until", TS, nullable=False),
    )
    op.create_table(
        "console_sessions",
        sa.Column("session_hash", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("org_id", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
    )
    op.create_index("ix_console_sessions_key", "console_sessions", ["key_id"])


def downgrade() -> None:
    op.drop_index("ix_console_sessions_key", "console_sessions")
    op.drop_table("console_sessions")
    op.drop_table("idempotency_keys")
    op.create_table(
        "idempotency_keys",
        sa.Column("org_id", sa.Text, primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer),
        sa.Column("body", sa.LargeBinary),
        sa.Column("headers", sa.Text),
        sa.Column("created_at", TS, nullable=False),
    )
