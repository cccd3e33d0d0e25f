"""Versions of what the projector writes, for live pages and caches to ask "did anything
of mine change?" in constant time (issue 17 item 7, issue 20 item 3).

- `runs.version`: +1 every time the projector writes the run's row (a new run starts at 1;
  a row written before migration 0013 holds NULL, read as 0). A later aggregate cache
  compares it in its write's compare-and-set, so it means exactly that.
- `run_documents.version`: the run's version when the document's row was last written,
  so "the documents changed since version V" is `version > V`.
- `runs.passes`: pass facts recorded over the run's documents (what the runs list shows),
  kept by adding each batch's change; NULL for a run written before 0013 (readers count its
  documents instead, as before; `runledger rebuild` fills it).
- `org_versions (org_id, partition, version)`: +1 by every batch of that partition that
  changed one of the organisation's runs, experiments or blocks. An organisation's version
  is the sum over its partitions: it moves whenever anything of the organisation changed,
  reveals nothing of anyone else's activity, and each row has one writer (the partition's
  projector), so projectors of different partitions never wait on each other.

Bumped per write, they depend on how the log was cut into batches, so they are projector
bookkeeping, not facts of the log: `state_hash` and `verify` leave `VERSIONS` out (a
replay rebuilds them, with other values). `passes` is a fact (a function of the documents'
states) and is in `read_columns.DERIVED`: verify compares it, state_hash skips it.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.domain.state import RunState
from projections.store.tables import org_versions

VERSIONS = {"runs": ("version",), "run_documents": ("version",)}
"""Per table, the columns a replay does not reproduce (left out of state_hash and verify)."""


def stamp_run(writes, run: RunState, loaded_docs: Mapping, marks: tuple[int, int | None] | None) -> None:
    """Give the run's row (just prepared by `writes.run_writes`) its next version and pass
    count, and its changed document rows that version. `marks`: the stored (version,
    passes) of an existing run, None for a new one."""
    version, passes = marks if marks is not None else (0, 0)
    version += 1
    if passes is not None:
        passes += sum(len(doc.passes) - _passes(loaded_docs.get((run.run_id, doc_id)))
                      for doc_id, doc in run.documents.items() if doc is not loaded_docs.get((run.run_id, doc_id)))
    run_row = (writes.updates.get("runs") or writes.inserts["runs"])[-1]
    run_row["version"], run_row["passes"] = version, passes
    for rows in (writes.inserts.get("run_documents", ()), writes.updates.get("run_documents", ())):
        for row in rows:
            row["version"] = version


def _passes(doc) -> int:
    return len(doc.passes) if doc is not None else 0


def passes_of(documents: Iterable) -> int:
    """`runs.passes` of a run whose every document state is at hand (a refold)."""
    return sum(len(doc.passes) for doc in documents)


async def bump_orgs(conn: AsyncConnection, partition: int, orgs: Iterable[str]) -> None:
    """+1 to each organisation's version in `partition` (a row is made at 1), in the
    caller's write transaction."""
    rows = [{"org_id": org, "partition": partition} for org in sorted(set(orgs))]
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(org_versions).values(org_id=bindparam("org_id"), partition=bindparam("partition"),
                                                    version=1)
    statement = statement.on_conflict_do_update(index_elements=[org_versions.c.org_id, org_versions.c.partition],
                                                set_={"version": org_versions.c.version + 1})
    await conn.execute(statement, rows)


# -- reads (one indexed statement each: constant cost, whatever the history) -----------

_ORG_VERSION = select(func.coalesce(func.sum(org_versions.c.version), 0)).where(
    org_versions.c.org_id == bindparam("org_id"))


async def org_version(conn: AsyncConnection, org_id: str) -> int:
    """The organisation's version: one row, summed over at most the log's partitions."""
    return int(await conn.scalar(_ORG_VERSION, {"org_id": org_id}))

