"""runs.version, runs.passes, run_documents.version, org_versions: what live pages and the
API's read cache ask to learn, in constant time, whether anything of theirs changed
(projections/store/row_versions.py).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05

No backfill: rows written before this revision keep NULL (a version of 0; a pass count the
console reads from the run's documents, as before) until the projector writes them again;
`runledger rebuild` (a new read-model version) fills every row.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("version", sa.BigInteger(), nullable=True))
    op.add_column("runs", sa.Column("passes", sa.Integer(), nullable=True))
    op.add_column("run_documents", sa.Column("version", sa.BigInteger(), nullable=True))
    op.create_table(
        "org_versions",
        sa.Column("org_id", sa.Text, primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("version", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("org_versions")
    op.drop_column("run_documents", "version")
    op.drop_column("runs", "passes")
    op.drop_column("runs", "version")
