"""A dead letter is retried once the code understands it: here, a pass written by a newer
producer (schema version 2) that this code learns to read, as a deploy would teach it."""
from __future__ import annotations

import orjson
from sqlalchemy import func, select

from events.catalogue import DocumentPassCompleted
from events.log import Message
from projections.runtime.projector import Projector
from projections.store import views
from projections.store.tables import dead_letters
from services.ops import audit
from tests.builders import RunScript
from tests.integration.test_projector import append, project_until


def _from_the_future(event) -> bytes:
    return orjson.dumps({**event.model_dump(mode="json"), "schema_version": 2})


async def test_a_dead_letter_is_projected_once_the_code_reads_it(event_log, engine, monkeypatch):
    script = RunScript(docs=1, n=3)
    await append(event_log, [script.created(), script.passed("doc_0", 0), script.passed("doc_0", 1)])
    newer = script.passed("doc_0", 2)
    positions = await event_log.append([Message(script.run_id, _from_the_future(newer))])
    await project_until(Projector(event_log, engine), positions)

    letters = await audit.dead_letters(engine)
    assert len(letters) == 1 and "newer" in letters[0]["reason"]
    assert [o["outcome"] for o in await audit.retry_dead_letters(engine)] == [
        "still undecodable: DocumentPassCompleted schema_version 2 is newer than this code knows (1)"]

    monkeypatch.setattr(DocumentPassCompleted, "VERSION", 2)  # the deploy that understands v2
    outcomes = await audit.retry_dead_letters(engine, letters[0]["position"])
    assert outcomes == [{"position": letters[0]["position"], "outcome": "projected: accepted"}]
    async with engine.connect() as conn:
        run = await views.get_run_any(conn, script.run_id)
        left = await conn.scalar(select(func.count()).select_from(dead_letters))
    assert (run.status, run.completed_document_count, left) == ("completed", 1, 0)
