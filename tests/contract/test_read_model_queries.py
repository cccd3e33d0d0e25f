"""Run lists on every store: keyset pages over nullable timestamps, time filters in UTC."""
from __future__ import annotations

import time
from datetime import timedelta, timezone

import pytest

from events.catalogue import ExperimentCreated
from events.envelope import new_event
from projections.runtime.projector import Projector
from projections.store import views
from projections.store.pagination import PageRequest
from tests.builders import T0, RunScript
from tests.integration.test_projector import append, project_until


@pytest.fixture
async def five_runs(event_log, engine):
    """run_0..run_4 created an hour apart; the even ones started, the odd ones never did."""
    events = [new_event(ExperimentCreated(workflow_id="wf_1", block_id="b1", name="e", n_consensus=3, documents=()),
                        aggregate_id="exp_1", org_id="org_a", producer="test", occurred_at=T0)]
    for i in range(5):
        script = RunScript(run_id=f"run_{i}", docs=1, n=3)
        script.tick = i * 3600
        events.append(script.created())
        if i % 2 == 0:
            events.append(script.started())
    positions = await append(event_log, events)
    await project_until(Projector(event_log, engine), positions)
    return engine


async def walk(engine, filters: views.RunFilters, order: str, limit: int = 2) -> list[str]:
    seen, after = [], None
    async with engine.connect() as conn:
        while True:
            page = await views.list_runs(conn, "org_a", filters, PageRequest(limit=limit, order=order, after=after))
            seen += [row.id_ for row in page.rows]
            if page.after is None:
                return seen
            after = page.after


async def test_paging_by_a_timestamp_that_is_null_for_some_runs_visits_each_run_once(five_runs):
    by_started = views.RunFilters(sort_by="started_at")
    assert await walk(five_runs, by_started, "desc") == ["run_4", "run_2", "run_0", "run_3", "run_1"]
    assert await walk(five_runs, by_started, "asc") == ["run_1", "run_3", "run_0", "run_2", "run_4"]
    assert await walk(five_runs, views.RunFilters(sort_by="created_at"), "desc", limit=1) == [
        f"run_{i}" for i in reversed(range(5))]


@pytest.fixture
def local_time_new_york(monkeypatch):
    """A server whose local zone is not UTC."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def test_a_time_filter_without_a_zone_means_utc_whatever_the_local_zone(five_runs, local_time_new_york):
    created_2 = T0 + timedelta(seconds=2 * 3600 + 1)
    naive = views.RunFilters(from_date=created_2.replace(tzinfo=None))
    assert await walk(five_runs, naive, "asc") == ["run_2", "run_3", "run_4"]
    until = views.RunFilters(to_date=created_2.replace(tzinfo=None))
    assert await walk(five_runs, until, "asc") == ["run_0", "run_1", "run_2"]
    aware = views.RunFilters(from_date=created_2.astimezone(timezone(timedelta(hours=-5))))
    assert await walk(five_runs, aware, "asc") == ["run_2", "run_3", "run_4"]
