"""Columns added by migrations 0011 and 0015, filled in the rows written before them.

Run once where the columns are added: by the PostgreSQL migration, and by the embedded
read model's `_add_missing_columns` when it adds them to an older SQLite file. Rows the
projector writes from then on carry them already (projections/store/writes.py,
projections/runtime/batch.py). Both steps read and write in batches: memory stays flat
on a large read model.
"""
from __future__ import annotations

from sqlalchemy import Connection, bindparam, func, inspect, select, text, tuple_, update

from projections.domain.aggregate import LABEL_BLOCKS
from projections.store.tables import document_targets, event_index, runs
from projections.store.target_labels import label_hash

PASS_TYPES = ("DocumentPassCompleted", "DocumentPassFailed")
BATCH = 1000


def event_documents(conn: Connection) -> None:
    """`event_index.document_id` of accepted pass events, from their stored bodies (a
    rejected event keeps no body: its row stays NULL, which readers of a document's
    accepted events never need)."""
    conn.execute(event_documents_statement())


def event_documents_statement():
    body_document = event_index.c.body[("payload", "document_id")].as_string()
    return update(event_index).where(
        event_index.c.document_id.is_(None), event_index.c.type.in_(PASS_TYPES)).values(document_id=body_document)


def target_labels(conn: Connection) -> None:
    """`document_targets.label_hash` of the targets of classifier and split runs."""
    dt = document_targets
    label_runs = select(runs.c.run_id).where(_block_type(conn).in_(LABEL_BLOCKS))
    query = (select(dt.c.run_id, dt.c.document_id, dt.c.path, dt.c.value)
             .where(dt.c.run_id.in_(label_runs), dt.c.label_hash.is_(None))
             .order_by(dt.c.run_id, dt.c.document_id, dt.c.path).limit(BATCH))
    write = update(dt).where(dt.c.run_id == bindparam("k_run"), dt.c.document_id == bindparam("k_document"),
                             dt.c.path == bindparam("k_path")).values(label_hash=bindparam("k_label"))
    last = None
    while True:
        batch = conn.execute(query if last is None else query.where(
            tuple_(dt.c.run_id, dt.c.document_id, dt.c.path) > tuple_(*last))).all()
        labelled = [dict(k_run=r.run_id, k_document=r.document_id, k_path=r.path,
                         k_label=label_hash(LABEL_BLOCKS[0], r.value)) for r in batch if r.value is not None]
        if labelled:
            conn.execute(write, labelled)
        if len(batch) < BATCH:
            return
        last = tuple(batch[-1][:3])


def _block_type(conn: Connection):
    """A run's block type: from its spec's column (0015) or, in a row from before it (or a
    schema not yet at 0015: this runs in migration 0011 too), from its state."""
    in_state = runs.c.state[("spec", "block_type")].as_string()
    if "spec" not in {column["name"] for column in inspect(conn).get_columns("runs")}:
        return in_state
    return func.coalesce(runs.c.spec["block_type"].as_string(), in_state)


def run_specs(conn: Connection) -> None:
    """`runs.spec` (0015) of rows written before it: their spec moved out of their state."""
    conn.execute(text(run_specs_statement(conn.dialect.name)))


def run_specs_statement(dialect: str) -> str:
    if dialect == "postgresql":
        return ("UPDATE runs SET spec = state -> 'spec', state = (state::jsonb - 'spec')::json "
                "WHERE spec IS NULL AND state -> 'spec' IS NOT NULL")
    return ("UPDATE runs SET spec = json_extract(state, '$.spec'), state = json_remove(state, '$.spec') "
            "WHERE spec IS NULL AND json_extract(state, '$.spec') IS NOT NULL")


AFTER_ADDING = {("event_index", "document_id"): event_documents, ("document_targets", "label_hash"): target_labels,
                ("runs", "spec"): run_specs}
"""What to run once a column is added to rows that predate it, in this order (the labels
read a run's block type from its state, before its spec leaves it)."""
