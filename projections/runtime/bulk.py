"""Bulk catch-up: a projector far behind (a rebuild, a new read-model version, a restart
after downtime) gathers each partition's records into large flushes instead of batches.

A flush is an ordinary batch (projections/runtime/batch.py, through the projector's own
steps: decode, load, fold and prepare, one write transaction with the checkpoint's
compare-and-set), so every row a batch writes, a flush writes, by the same code, and a flush
that dies (a crash, a kill, a lost partition) leaves nothing behind: the next one starts
at the stored checkpoint. What differs:

- **size**: up to `FLUSH_RECORDS` records (or `FLUSH_BYTES` of them) of one partition, so
  an aggregate's row is written once per flush, not once per batch that touches it;
- **no state read back**: the aggregates a flush folded stay in memory (`AggregateCache`)
  for the next flush of the catch-up, as the store holds them after the commit, a run with
  the `(version, passes)` its row was stamped with (projections/store/row_versions.py);
  only aggregates not held are read (a run held in part, as a batch loads it, has the
  documents it lacks read when a flush touches them), and every lent run's stored version is
  checked in the flush's transaction (`batch.check_lent`). The history's heads and earlier
  accepted rows are read per flush as per batch;
- row versions count writes: a flush writes an aggregate's row once, so a catch-up leaves
  lower versions than batches would (state hashes and verify leave them out);
- **bulk writes**: new rows go in with one COPY per table on PostgreSQL, one executemany on
  SQLite (projections/store/bulk_writes.py); changed rows with the batch's own UPDATEs;
- the fold runs in a thread of the projector's process, never in the fold pool (the
  aggregates it starts from are here).

When: the projector enters bulk mode when a poll comes back full (it is at least a poll
behind); once a poll comes back short and the partitions it holds are, together, no more
than a poll behind the log's end (`EventLog.end_offsets`: a Kafka fetch can come back short
mid-log), it flushes what was gathered and ends the mode, dropping the cache. The cache is
also dropped for a partition whenever it is sought (an assignment, a resync after a lost
compare-and-set, a read-model switch), so it never outlives the projector's hold on the
partition's rows.

The cyclic garbage collector is paused during the mode: its collections walk every object
alive, and a catch-up keeps hundreds of thousands of them (the kept aggregates, the flush's
decoded events), so with it running the decode took twice the CPU and the fold a third more
(docs/benchmarks.md, "Bulk catch-up and rebuild"); a young collection after each flush cost
~5 %.
States, events and rows are acyclic, freed as soon as unused; what cyclic garbage the loop
and the drivers leave waits for the end of the catch-up.

Memory: at most `PENDING_BYTES` of gathered records (the largest partition's are flushed
first beyond it), and the cache within `CACHE_BUDGET`, measured as the JSON its aggregates'
rows were written as, times `OBJECT_FACTOR` for the Python objects behind it; beyond it,
the least recently used aggregates are dropped after a flush (they are in the store).
"""
from __future__ import annotations

import gc
from collections import OrderedDict
from typing import Any

from events.log import Record
from projections.domain.state import evolve

FLUSH_RECORDS = 10_000
"""Records of one partition folded and written together (their decoded events take ~45 MB
for the bench's invoice passes)."""
FLUSH_BYTES = 16 * 2**20
"""... or this many bytes of them, whichever comes first."""
PENDING_BYTES = 32 * 2**20
"""Records gathered over all partitions before the largest partition's are flushed."""
CACHE_BUDGET = 96 * 2**20
"""Estimated bytes of kept aggregates (JSON written x OBJECT_FACTOR), before LRU drops."""
OBJECT_FACTOR = 2
"""The Python objects of a kept aggregate against the JSON of the rows its flushes wrote
(event index bodies and targets included): measured ~1.8-2 with tracemalloc for the bench's
extraction runs, consensus on (docs/benchmarks.md, "Bulk catch-up and rebuild")."""

Key = tuple[str, str]


class AggregateCache:
    """Folded aggregates kept between the flushes of a catch-up (or the batches of a live
    projector: `LiveCache`), per partition, least recently used first out. A state is kept
    only once the flush that folded it committed (`keep` stages it, `committed` keeps it).
    A run may be held in part (a batch loads only the documents it touches): the documents a
    later batch touches and the run does not hold are read then (`missing`), and kept too.

    Lent runs are checked in the write's transaction (`batch.check_lent`): the run's stored
    version must still be the one its kept state was written with, or the partition's
    aggregates are dropped and the batch is loaded and folded again from the store."""

    def __init__(self, budget: int = CACHE_BUDGET, kinds: frozenset[str] | None = None):
        self.budget = budget
        self.kinds = kinds  # None: every kind; else only these (a live projector keeps runs only)
        self.size = 0
        self.flushes = self.lent = self.dropped = 0  # committed flushes, states lent, states dropped for room
        self.stale = 0  # lent runs found written by someone else (their version moved): read again
        self.missing = 0  # documents read for runs held in part (a batch touched documents they did not hold)
        self._states: OrderedDict[tuple[int, Key], tuple] = OrderedDict()  # (state, size, mark, sizes, documents)
        self._staged: dict[int, dict[Key, tuple]] = {}

    def __len__(self) -> int:
        return len(self._states)

    def lend(self, batch, touched: set[tuple[str, str]]) -> dict[str, set[str]]:
        """Set the held states of the batch's aggregates as loaded (not quarantined ones);
        the ids of each kind that need no read. A run is lent with the documents the batch
        touches (`touched`: (run id, document id) pairs) that it holds, as a load reads it:
        the fold copies a run's documents map on every pass, so a lent map of all 2,000
        documents of a long run would make each event cost the run's size."""
        partition = batch.records[0].partition
        held: dict[str, set[str]] = {}
        wanted: dict[str, set[str]] = {}
        for run_id, doc_id in touched:
            wanted.setdefault(run_id, set()).add(doc_id)
        for key in batch.by_aggregate():
            found = self._states.get((partition, key))
            if found is None or key in batch.quarantined:
                continue
            self._states.move_to_end((partition, key))
            state, mark = found[0], found[2]
            self.lent += 1
            if key[0] == "run":
                documents = found[4]
                state = evolve(state, documents={d: documents[d] for d in wanted.get(key[1], ()) if d in documents})
                batch.marks[key[1]] = mark  # the run's (version, passes) as its last flush wrote them
                batch.lent[key[1]] = mark[0]  # ... checked against the store in the write (check_lent)
                batch.loaded_docs.update(((key[1], doc_id), doc) for doc_id, doc in state.documents.items())
            batch.loaded[key] = state
            held.setdefault(key[0], set()).add(key[1])
        return held

    def keep(self, batch) -> None:
        """In `prepare`, once the rows are built: stage the folded states to keep."""
        partition = batch.records[0].partition
        staged = {}
        for key, state in batch.states.items():
            if state is None or key in batch.failures or key in batch.parked:
                continue
            if self.kinds is not None and key[0] not in self.kinds:
                continue
            written = batch.writes.aggregates.get(key)
            previous = self._states.get((partition, key))
            size, sizes = self._measure(previous, written)
            documents = state.documents if key[0] == "run" else None  # merged into what it held, at the commit
            staged[key] = (state, size, _mark(key, written, batch.marks), sizes, documents)
        self._staged[partition] = staged

    def _measure(self, previous, written) -> tuple[int, Any]:
        """The kept state's estimated bytes (and what a later estimate starts from). A flush
        writes an aggregate once: what it wrote (event index bodies included: the events the
        state now holds) adds to its estimate."""
        return (previous[1] if previous else 0) + (_json_bytes(written) if written else 0) * OBJECT_FACTOR, None

    def committed(self, batch) -> None:
        """The flush's transaction committed: what it staged is what the store holds."""
        partition = batch.records[0].partition
        for key, entry in self._staged.pop(partition, {}).items():
            if key in batch.failures or key in batch.parked:  # refused by the store after all
                self._drop((partition, key))
                continue
            old = self._states.pop((partition, key), None)
            self.size += entry[1] - (old[1] if old else 0)
            if entry[4] is not None:  # a run: the documents it held (the cache's own map), with the batch's
                documents = old[4] if old else {}
                documents.update(entry[4])
                entry = (*entry[:4], documents)
            self._states[(partition, key)] = entry
        for key in (*batch.failures, *batch.parked):  # set aside: read again once the quarantine is lifted
            self._drop((partition, key))
        self.flushes += 1
        while self.size > self.budget and self._states:
            self._drop(next(iter(self._states)))
            self.dropped += 1

    def forget(self, partition: int | None = None) -> None:
        """Drop a partition's aggregates (all of them with None)."""
        for entry in [e for e in self._states if partition is None or e[0] == partition]:
            self._drop(entry)
        if partition is None:
            self._staged.clear()
        else:
            self._staged.pop(partition, None)

    def _drop(self, entry: tuple[int, Key]) -> None:
        found = self._states.pop(entry, None)
        if found is not None:
            self.size -= found[1]


class LiveCache(AggregateCache):
    """The runs a projector that keeps up folded, kept across its batches (issue 20 item 2):
    a batch reads from the store only the runs and documents it does not hold, and writes
    as before. Runs only (their rows carry the version `check_lent` compares); within
    `LIVE_CACHE_BUDGET`, estimated as the JSON of the rows that hold each run (its row and
    its documents' rows as last written) times `OBJECT_FACTOR`: a live run's rows are
    written again by every batch that touches it, so what was written is not added up."""

    def __init__(self, budget: int | None = None):
        super().__init__(LIVE_CACHE_BUDGET if budget is None else budget, kinds=frozenset({"run"}))

    def _measure(self, previous, written) -> tuple[int, Any]:
        if written is None:
            return (previous[1], previous[3]) if previous else (0, {})
        sizes = dict(previous[3]) if previous else {}  # document id (None: the run's row) -> JSON bytes
        for rows in (written.inserts, written.updates):
            for row in rows.get("run_documents", ()):
                sizes[row.get("document_id") or row.get("k_document_id")] = len(row["state"])
            for row in rows.get("runs", ()):
                sizes[None] = len(row["state"])
        return sum(sizes.values()) * OBJECT_FACTOR, sizes


LIVE_CACHE_BUDGET = 64 * 2**20
"""Estimated bytes of the runs a live projector keeps between batches (`LiveCache`)."""


def _mark(key: Key, written, marks: dict) -> tuple[int, int | None] | None:
    """A run's stored (version, passes) after the flush (projections/store/row_versions.py):
    what its row was stamped with, or, unwritten, what it was loaded or lent with."""
    if key[0] != "run":
        return None
    rows = written and (written.updates.get("runs") or written.inserts.get("runs"))
    if rows:
        return rows[-1]["version"], rows[-1]["passes"]
    return marks.get(key[1])


def _json_bytes(written) -> int:
    total = 0
    for rows in (*written.inserts.values(), *written.updates.values()):
        for row in rows:
            for value in row.values():
                if type(value) is not str and isinstance(value, str):  # JSON text (JsonText)
                    total += len(value)
    return total


class CatchUp:
    """A projector's bulk mode: on from a full poll until caught up (see the module)."""

    def __init__(self, flush_records: int = FLUSH_RECORDS, flush_bytes: int = FLUSH_BYTES,
                 pending_bytes: int = PENDING_BYTES, cache_budget: int = CACHE_BUDGET, enabled: bool = True):
        self.enabled = enabled  # False: batches only (tests compare the two)
        self.flush_records, self.flush_bytes, self.pending_bytes = flush_records, flush_bytes, pending_bytes
        self.cache = AggregateCache(cache_budget)
        self.on = False
        self._pending: dict[int, list[Record]] = {}
        self._bytes: dict[int, int] = {}

    def polled(self, records: int, asked: int) -> None:
        if records >= asked and self.enabled and not self.on:
            self.on = True
            _pause_gc()

    def gather(self, partition: int, records: list[Record]) -> list[Record] | None:
        """Add a partition's fetched records: those to apply now (a flush), or None."""
        pending = self._pending.setdefault(partition, [])
        pending.extend(records)
        self._bytes[partition] = self._bytes.get(partition, 0) + sum(len(r.value) for r in records)
        if len(pending) >= self.flush_records or self._bytes[partition] >= self.flush_bytes:
            return self.take(partition)
        return None

    def take(self, partition: int) -> list[Record]:
        self._bytes.pop(partition, None)
        return self._pending.pop(partition, [])

    def due(self, drained: bool) -> list[int]:
        """Partitions to flush now: all of them once caught up (the mode then ends), else the
        largest while the gathered records pass PENDING_BYTES."""
        if drained:
            return sorted(p for p, records in self._pending.items() if records)
        if sum(self._bytes.values()) <= self.pending_bytes:
            return []
        return [max(self._bytes, key=self._bytes.get)]

    def pending_from(self, partition: int) -> int | None:
        """The offset after the records gathered for `partition`, if any."""
        pending = self._pending.get(partition)
        return pending[-1].offset + 1 if pending else None

    def end(self) -> None:
        """Caught up: nothing gathered is left (flushed before), the cache goes."""
        if self.on:
            _resume_gc()
        self.on = False
        self.cache.forget()

    def drop(self, partition: int) -> None:
        """The partition is sought again (or gone): what was gathered and kept for it goes."""
        self.take(partition)
        self.cache.forget(partition)


_pausers = 0
_was_enabled = True


def _pause_gc() -> None:
    global _pausers, _was_enabled
    if _pausers == 0:
        _was_enabled = gc.isenabled()
        gc.disable()
    _pausers += 1


def _resume_gc() -> None:
    global _pausers
    _pausers -= 1
    if _pausers == 0 and _was_enabled:
        gc.enable()
