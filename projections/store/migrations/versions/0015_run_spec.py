"""runs.spec: the RunCreated payload in a column of its own, written once with the row.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05

Until now every write of a run's row wrote its state whole, and the state held the run's
spec (its documents, with their handle inputs: ~128 bytes a document, 255 KB for a run of
2,000), so every batch that touched a long run wrote all of it again. The spec never
changes: it is written once, into `runs.spec`, and the state leaves it out. Rows written
before are moved here: their spec to the column, the state without it
(projections/store/backfill.py `run_specs`, batched).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from projections.store import backfill

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("spec", sa.JSON(), nullable=True))
    if context.is_offline_mode():  # `runledger migrate --sql`: the statements, no connection
        op.execute(backfill.run_specs_statement("postgresql"))
        return
    backfill.run_specs(op.get_bind())


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("UPDATE runs SET state = (state::jsonb || jsonb_build_object('spec', spec::jsonb))::json "
                   "WHERE spec IS NOT NULL")
    else:
        op.execute("UPDATE runs SET state = json_set(state, '$.spec', json(spec)) WHERE spec IS NOT NULL")
    op.drop_column("runs", "spec")
