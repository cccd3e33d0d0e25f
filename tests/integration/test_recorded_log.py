"""The recorded log (tests/fixtures/recorded_log) folds to the state recorded beside it,
on SQLite and on PostgreSQL: an event shape changed without an upcaster, or a fold that
changed what old logs mean, fails here (read that directory's README first)."""
from __future__ import annotations

import json

from projections.runtime import verify
from projections.store.state_hash import state_hashes
from tests.fixtures.recorded_log.replay import EXPECTED, embedded_log, project_all, read_records


async def test_the_recorded_log_folds_to_the_recorded_state(engine, tmp_path):
    expected = json.loads(EXPECTED.read_text())
    records = read_records()
    assert len(records) == expected["events"]
    log = await embedded_log(tmp_path / "recorded.db", records)
    try:
        await project_all(log, engine)
        hashes = {name: list(value) for name, value in (await state_hashes(engine)).items()}
        assert hashes == expected["tables"]
        checks = [check async for check in verify.verify_all(engine, log)]
    finally:
        await log.close()
    assert len(checks) >= 8 and all(c.ok for c in checks), [d.describe() for c in checks for d in c.differences]
