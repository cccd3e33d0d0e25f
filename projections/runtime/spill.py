"""Scratch space for a refold too large to hold: a run's derived rows on disk, not in memory.

A chunked refold (projections/runtime/run_rows.py) keeps the run's scalars in memory and
its documents here between chunks, exactly as the projector keeps them in the read model
between batches: a chunk loads the documents its events touch and puts them back. The
event index rows it derives are kept here too, so a repair can write them without folding
twice. A temporary SQLite file (the standard library's driver, synchronous: it runs
wherever the refold runs, never on an API event loop), deleted on close.
"""
from __future__ import annotations

import sqlite3
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Iterator

import orjson

from projections.domain.state import DocumentState
from projections.store import serialize as ser
from projections.store.writes import document_json


class Spill:
    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="runledger-spill-")
        self._db = sqlite3.connect(Path(self._dir.name) / "spill.db", isolation_level=None,
                                   check_same_thread=False)  # used by one task at a time, from worker threads too
        self._db.executescript("""
            PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;
            CREATE TABLE documents (document_id TEXT PRIMARY KEY, state BLOB NOT NULL) WITHOUT ROWID;
            CREATE TABLE events (partition INTEGER, "offset" INTEGER, row BLOB NOT NULL,
                                 PRIMARY KEY (partition, "offset")) WITHOUT ROWID;
            CREATE TABLE rows (tab TEXT NOT NULL, n INTEGER NOT NULL, row BLOB NOT NULL, PRIMARY KEY (tab, n));
        """)
        self._rows = 0

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    # -- documents -------------------------------------------------------------------

    def put_documents(self, documents: Iterable[DocumentState]) -> None:
        self._db.executemany("INSERT OR REPLACE INTO documents VALUES (?, ?)",
                             ((doc.document_id, document_json(doc)) for doc in documents))

    def documents(self, ids: Iterable[str]) -> dict[str, DocumentState]:
        found, ids = {}, list(ids)
        for at in range(0, len(ids), 500):
            part = ids[at:at + 500]
            query = f"SELECT state FROM documents WHERE document_id IN ({','.join('?' * len(part))})"
            for (state,) in self._db.execute(query, part):
                doc = ser.document_from_json(orjson.loads(state))
                found[doc.document_id] = doc
        return found

    def document_ids(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT document_id FROM documents")]

    # -- event index rows ------------------------------------------------------------

    def put_events(self, rows: Iterable[dict[str, Any]]) -> None:
        self._db.executemany("INSERT OR REPLACE INTO events VALUES (?, ?, ?)",
                             ((row["partition"], row["offset"], orjson.dumps(row)) for row in rows))

    def events(self, batch: int = 500) -> Iterator[list[dict[str, Any]]]:
        """The derived event index rows in log order, `batch` at a time."""
        last = (-1, -1)
        while True:
            found = self._db.execute('SELECT partition, "offset", row FROM events WHERE (partition, "offset") > (?, ?) '
                                     'ORDER BY partition, "offset" LIMIT ?', (*last, batch)).fetchall()
            if not found:
                return
            last = found[-1][:2]
            yield [_event_row(orjson.loads(row)) for _, _, row in found]


    def count_deliveries(self, repeats: Iterable[Any]) -> None:
        """Later deliveries of events whose rows are here already (history_index.Indexed:
        partition, offset, deliveries, last_offset): counted on those rows."""
        for indexed in repeats:
            found = self._db.execute('SELECT row FROM events WHERE partition = ? AND "offset" = ?',
                                     (indexed.partition, indexed.offset)).fetchone()
            if found is not None:
                row = {**orjson.loads(found[0]), "deliveries": indexed.deliveries, "last_offset": indexed.last_offset}
                self.put_events([row])

    # -- other derived rows, in the order they came --------------------------------------

    def put_rows(self, table: str, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self._db.execute("INSERT INTO rows VALUES (?, ?, ?)", (table, self._rows, orjson.dumps(row)))
            self._rows += 1

    def rows(self, table: str, batch: int = 500) -> Iterator[list[dict[str, Any]]]:
        last = -1
        while True:
            found = self._db.execute("SELECT n, row FROM rows WHERE tab = ? AND n > ? ORDER BY n LIMIT ?",
                                     (table, last, batch)).fetchall()
            if not found:
                return
            last = found[-1][0]
            yield [orjson.loads(row) for _, row in found]


def _event_row(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "occurred_at": datetime.fromisoformat(row["occurred_at"])}
