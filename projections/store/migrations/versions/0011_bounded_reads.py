"""Bounded reads (issue 17): index columns for the metrics views and a document's pass
events, the experiment card, and the verification jobs' table.

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-01

- `document_targets.label_hash` (classifier and split targets: which consensus label the
  value is) with indexes on (run_id, path) and (run_id, label_hash): `by_target` reads
  one path's or one label's rows of a run;
- `event_index.document_id` with an index on (aggregate_id, document_id, offset): the
  console's votes view reads one document's pass events;
- `experiments.card`: the experiment resource's own fields without its document list;
- `verifications` (control store): verification jobs, one active per organisation.

The two index columns are filled here for the rows written before them
(projections/store/backfill.py); `experiments.card` is not (NULL: read from `state`,
as before; an experiment's next event fills it).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from projections.store import backfill

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("document_targets", sa.Column("label_hash", sa.String(64), nullable=True))
    op.create_index("ix_document_targets_path", "document_targets", ["run_id", "path"])
    op.create_index("ix_document_targets_label", "document_targets", ["run_id", "label_hash"])
    op.add_column("event_index", sa.Column("document_id", sa.Text(), nullable=True))
    op.create_index("ix_event_index_document", "event_index", ["aggregate_id", "document_id", "offset"])
    op.add_column("experiments", sa.Column("card", sa.Text(), nullable=True))
    op.create_table(
        "verifications",
        sa.Column("verification_id", sa.String(40), primary_key=True),
        sa.Column("org_id", sa.Text, nullable=False),
        sa.Column("run_id", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("active_org", sa.Text, unique=True),
        sa.Column("events_total", sa.BigInteger),
        sa.Column("events_done", sa.BigInteger, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
        sa.Column("heartbeat_at", TS, nullable=False),
        sa.Column("result", sa.Text),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_verifications_org", "verifications", ["org_id", "created_at"])
    if context.is_offline_mode():  # `runledger migrate --sql`: the statements, no connection
        op.execute(backfill.event_documents_statement())
        op.execute("-- document_targets.label_hash of classifier and split runs: computed in Python by an online "
                   "upgrade (projections/store/backfill.py); run `runledger migrate` against the database")
        return
    bind = op.get_bind()
    backfill.event_documents(bind)
    backfill.target_labels(bind)


def downgrade() -> None:
    op.drop_index("ix_verifications_org", "verifications")
    op.drop_table("verifications")
    op.drop_column("experiments", "card")
    op.drop_index("ix_event_index_document", "event_index")
    op.drop_column("event_index", "document_id")
    op.drop_index("ix_document_targets_label", "document_targets")
    op.drop_index("ix_document_targets_path", "document_targets")
    op.drop_column("document_targets", "label_hash")
