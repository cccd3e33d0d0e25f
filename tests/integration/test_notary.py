"""The notary against real stores and logs: the projector grows each partition's Merkle
tree with every record (poison included), in the batch's transaction; the stored tree is
the tree of the log's records, whatever the batches; proofs read from it verify; a replay
builds the same rows; a run's bundle costs its records, not the log; `verify`'s log check
names edited, missing and inserted records; digests published on the log fold harmlessly."""
from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest
from sqlalchemy import func, select, update

from events.log import Message, Record
from events.sqlite_log import SqliteEventLog
from projections.notary import logcheck, merkle, proofs, storage
from projections.notary.bundle import check
from projections.notary.heads import Signer
from projections.notary.leaf import record_hash
from projections.runtime.projector import Projector
from projections.store.database import make_engine, prepare_schema
from projections.store.tables import event_index, notary_segments, notary_tiles, runs as runs_table
from tests.builders import RunScript
from tests.conftest import fresh_database_url
from tests.costs import counting
from tests.integration.test_projector import append, project_until

SIGNER = Signer.generate()


async def whole_partition(log, partition: int) -> list[Record]:
    records, at = [], 0
    while True:
        got = await log.read(partition, at, 500)
        if not got:
            return records
        records += got
        at = got[-1].offset + 1


def runs(count: int, docs: int = 3, prefix: str = "run") -> list:
    scripts = [RunScript(run_id=f"{prefix}_{i}", docs=docs, n=3) for i in range(count)]
    return [s.created() for s in scripts] + [e for s in scripts for e in s.all_passes()]


async def tree_rows(engine) -> dict:
    async with engine.connect() as conn:
        return {t.name: sorted(tuple(r) for r in (await conn.execute(select(t))).all())
                for t in (notary_tiles, notary_segments)}


async def test_each_partitions_tree_is_the_tree_of_its_records(event_log, engine):
    positions = await append(event_log, runs(6))
    positions += await event_log.append([Message("run_0", b"\xff poison is a record too")])
    await project_until(Projector(event_log, engine, batch_size=13), positions)
    async with engine.connect() as conn:
        heads, found = await proofs.signed_heads(conn, SIGNER)
        assert {h.head.partition for h in heads} == {p.partition for p in positions}
        for signed in heads:
            p, size = signed.head.partition, signed.head.size
            records = await whole_partition(event_log, p)
            leaves = [record_hash(r) for r in records]
            assert size == len(records) and signed.head.root == merkle.range_root(leaves)
            at = await storage.leaves_of(conn, found[p], [r.offset for r in records])
            assert [at[r.offset] for r in records] == list(range(size))
            for index in {0, size // 2, size - 1}:
                spans = merkle.inclusion_ranges(index, size)
                stored = await storage.range_hashes(conn, p, spans)
                merkle.verify_inclusion(index, size, leaves[index], [stored[s] for s in spans], signed.head.root)
            old = max(1, size // 3)
            spans = merkle.consistency_ranges(old, size)
            stored = await storage.range_hashes(conn, p, spans)
            merkle.verify_consistency(old, size, merkle.range_root(leaves, 0, old), signed.head.root,
                                      [stored[s] for s in spans])


async def test_a_replay_in_other_batches_builds_the_same_tree(event_log, engine, request, tmp_path):
    positions = await append(event_log, runs(5))
    await project_until(Projector(event_log, engine, batch_size=2000), positions)
    replay_url = await fresh_database_url("sqlite" if "sqlite" in str(engine.url) else "postgres", request,
                                          tmp_path / "replay")
    (tmp_path / "replay").mkdir(exist_ok=True)
    replay = make_engine(replay_url)
    await prepare_schema(replay_url, replay)
    try:
        await project_until(Projector(event_log, replay, batch_size=7), positions)
        assert await tree_rows(replay) == await tree_rows(engine)
    finally:
        await replay.dispose()


async def one_partition_ledger(tmp_path, others: int):
    """A run of 10 records among `others` records of other runs, all in one partition."""
    log = SqliteEventLog(tmp_path / f"one-{others}.db", partitions=1)
    await log.start()
    url = f"sqlite+aiosqlite:///{tmp_path / f'rm-{others}.db'}"
    engine = make_engine(url)
    await prepare_schema(url, engine)
    events, mine = runs(others // 10), runs(1, prefix="mine")
    half = len(events) // 2
    positions = await append(log, events[:half] + mine + events[half:])
    await project_until(Projector(log, engine), positions[-1:])
    return log, engine


async def test_a_runs_bundle_costs_its_records_not_the_log(tmp_path):
    costs = {}
    for others in (300, 3000):
        log, engine = await one_partition_ledger(tmp_path, others)
        try:
            async with engine.connect() as conn:
                with counting() as cost:
                    bundle = await proofs.run_bundle(conn, log, SIGNER, "mine_0", "org_a")
            assert check(bundle, public_key=SIGNER.public_key).ok and len(bundle["records"]) == 10
            costs[others] = cost
        finally:
            await engine.dispose()
            await log.close()
    small, big = costs[300], costs[3000]
    assert big.statements == small.statements and big.log_reads == small.log_reads == 1, (small, big)
    assert big.log_records == small.log_records == 10  # the run's records are together: read in one go
    assert big.rows <= small.rows + 3, (small, big)  # 10x the log: a level more of tiles, no more


async def test_a_runs_bundle_comes_in_pages_that_each_check_alone_and_together_hold_every_record(tmp_path):
    log, engine = await one_partition_ledger(tmp_path, 40)
    try:
        async with engine.connect() as conn:
            whole = await proofs.run_bundle(conn, log, SIGNER, "mine_0", "org_a")
            pages, after = [], None
            while True:
                page = await proofs.run_bundle(conn, log, SIGNER, "mine_0", "org_a", after=after, budget=1_200)
                pages.append(page)
                after = page["page"]["after"]
                if after is None:
                    break
    finally:
        await engine.dispose()
        await log.close()
    assert "page" not in whole and len(pages) > 2  # about 1.2 KB a page: a few records each
    assert all(check(page, public_key=SIGNER.public_key).ok for page in pages)
    assert [r["position"] for page in pages for r in page["records"]] == [r["position"] for r in whole["records"]]
    assert all(len(json.dumps(page)) < 1_200 + 3_000 for page in pages)  # the budget, and one record over at most


def edit_log(path, sql: str, *args) -> None:
    with sqlite3.connect(path) as db:
        db.execute(sql, args)


async def test_verify_names_edited_missing_and_inserted_records(tmp_path):
    log, engine = await one_partition_ledger(tmp_path, 40)
    path = tmp_path / "one-40.db"
    try:
        assert (await logcheck.check_log(engine, log)).ok
        async with engine.connect() as conn:
            mine = [o for _, o in await proofs.run_positions(conn, "mine_0")]
            assert await logcheck.run_differences(conn, log, "mine_0") == []
        edit_log(path, 'UPDATE log SET value = ? WHERE "offset" = ?', b'{"edited": 1}', mine[2])
        edit_log(path, 'DELETE FROM log WHERE "offset" = ?', mine[4])
        async with engine.connect() as conn:
            found = await logcheck.run_differences(conn, log, "mine_0")
        assert [d.describe() for d in found] == [f"edited record at 0:{mine[2]}", f"missing record at 0:{mine[4]}"]

        edit_log(path, 'UPDATE log SET "offset" = -1 WHERE "offset" = 0')  # two records change places
        edit_log(path, 'UPDATE log SET "offset" = 0 WHERE "offset" = 1')
        edit_log(path, 'UPDATE log SET "offset" = 1 WHERE "offset" = -1')
        report = await logcheck.check_log(engine, log)
        assert [p.describe() for p in report.problems] == [
            "edited record at 0:0", "edited record at 0:1", f"edited record at 0:{mine[2]}",
            f"missing record at 0:{mine[4]}"]
    finally:
        await engine.dispose()
        await log.close()


async def test_a_record_put_into_a_gap_of_the_log_is_inserted(tmp_path):
    log = SqliteEventLog(tmp_path / "log.db", partitions=1)
    await log.start()
    url = f"sqlite+aiosqlite:///{tmp_path / 'readmodel.db'}"
    engine = make_engine(url)
    await prepare_schema(url, engine)
    try:
        positions = await append(log, runs(2))
        edit_log(tmp_path / "log.db", 'DELETE FROM log WHERE "offset" = 5')  # a gap, as Kafka's markers leave
        await project_until(Projector(log, engine), positions[-1:])
        async with engine.connect() as conn:
            assert [tuple(r) for r in (await conn.execute(select(notary_segments))).all()] == [(0, 0, 0), (0, 6, 5)]
        assert (await logcheck.check_log(engine, log)).ok
        edit_log(tmp_path / "log.db", "INSERT INTO log VALUES (0, 5, 'run_0', ?, 0)", b"{}")
        assert [p.describe() for p in (await logcheck.check_log(engine, log)).problems] == ["inserted record at 0:5"]
    finally:
        await engine.dispose()
        await log.close()


async def test_a_changed_tree_in_the_read_model_is_found(tmp_path):
    log, engine = await one_partition_ledger(tmp_path, 40)
    try:
        async with engine.begin() as conn:
            tile = (await conn.execute(select(notary_tiles).where(notary_tiles.c.level == 1))).one()
            await conn.execute(update(notary_tiles).where(notary_tiles.c.level == 1).values(
                hashes=b"\x00" + tile.hashes[1:]))
        report = await logcheck.check_log(engine, log)
        assert [p.describe() for p in report.problems] == [
            "partition 0: the tree's upper tiles do not match its leaves (the read model's tree was changed)"]
    finally:
        await engine.dispose()
        await log.close()


async def test_digests_published_on_the_log_fold_harmlessly(tmp_path):
    from services.bootstrap import start_runtime
    from services.notary import AGGREGATE, Publisher, runtime_signer
    from services.settings import Settings

    runtime = await start_runtime(Settings(data_dir=tmp_path, fold_processes=0), with_projector=True)
    projecting = asyncio.create_task(runtime.projector.run())
    try:
        positions = await append(runtime.log, runs(2))
        assert await runtime.projector.wait(positions[-1], 30)
        publisher = Publisher(runtime, 3600)
        published = await publisher.publish()  # this projector holds every partition, the notary's too
        assert published is not None and await runtime.projector.wait(published, 30)
        key = await runtime_signer(runtime)
        assert (tmp_path / "notary.key").stat().st_mode & 0o777 == 0o600
        async with runtime.engine.connect() as conn:
            rows = (await conn.execute(select(event_index).where(event_index.c.aggregate_id == AGGREGATE))).all()
            assert await conn.scalar(select(func.count()).select_from(runs_table)) == 2  # no state of its own
        assert [(r.type, r.accepted, r.reason) for r in rows] == [("TreeHeadsPublished", True, None)]
        payload = rows[0].body["payload"]
        digest = {"format": "runledger-digest/1", "algorithm": "ed25519", "key_id": payload["key_id"],
                  "public_key": payload["public_key"], "heads": payload["heads"]}
        assert payload["key_id"] == key.key_id and check(digest, public_key=key.public_key).ok
        assert sum(h["size"] for h in payload["heads"]) == len(positions)

        assert await publisher.publish() is None  # nothing but its own digest since
        more = await append(runtime.log, runs(1, prefix="later"))
        assert await runtime.projector.wait(more[-1], 30)
        assert await publisher.publish() is not None
    finally:
        runtime.projector.stop()
        await asyncio.wait_for(projecting, 15)
        await runtime.close()


async def test_a_batch_that_did_not_commit_leaves_no_tree_behind_it(engine):
    """The tail a process keeps for its partition's next batch is only used when the batch
    starts where it ends: a rolled-back batch is retried from the stored tree."""
    records = [Record(0, i, "run_0", b"{}", 1_700_000_000_000 + i) for i in range(40)]

    class Rollback(Exception):
        pass

    async with engine.connect() as conn:
        first = await storage.tail(conn, 0, 0)
    first.grow(records[:20])
    with pytest.raises(Rollback):
        async with engine.begin() as conn:
            await storage.save(conn, first)
            raise Rollback()  # e.g. the commit failed
    async with engine.connect() as conn:
        again = await storage.tail(conn, 0, 0)  # the same batch, retried from checkpoint 0
    assert (again.size, again.next_offset) == (0, None)
    again.grow(records[:20])
    async with engine.begin() as conn:
        await storage.save(conn, again)
    async with engine.connect() as conn:
        kept = await storage.tail(conn, 0, 20)  # the next batch: from the kept tail, nothing read
        kept.grow(records[20:])
    async with engine.begin() as conn:
        await storage.save(conn, kept)
    async with engine.connect() as conn:
        found = await storage.trees(conn)
        root = (await storage.roots(conn, found))[0]
    assert found[0].size == 40 and root == merkle.range_root([record_hash(r) for r in records])
