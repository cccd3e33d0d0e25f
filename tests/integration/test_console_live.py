"""The console's live updates cost what changed, per organisation (services/console/live.py):
a poll reads one version row and answers 204 while nothing of the page's changed; another
organisation's writes change nothing on this organisation's pages; a change draws only the
rows that changed; a run's document list is paged, so a long run's page is bounded. Counted
with tests/costs.py (no timing)."""
from __future__ import annotations

import asyncio
import contextlib
import html
import re

import httpx

from projections.runtime.projector import Projector
from services.api.app import create_app

from services.keys import store_key
from services.ledger import Ledger
from tests.builders import RunScript
from tests.console_session import sign_in
from tests.costs import counting
from tests.integration.test_read_your_writes import KEY, experiment, runtime  # noqa: F401 (fixtures)

AUTH = ("console_sessions", "api_keys")  # the caller looked up again when its cache ran out

OTHER_KEY = "rl_test_console_live_org_b"


@contextlib.asynccontextmanager
async def console(runtime, key: str = KEY):
    app = create_app(runtime)
    app.state.keys.ttl = 3600  # a key looked up once: the counts below are the pages' own
    if runtime.following is not None:
        runtime.following.cancel()  # its poll of the read-model pointer would be counted too
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://runledger") as client:
        assert (await sign_in(client, key)).status_code == 303
        yield client


async def project(runtime, events) -> None:
    """Append, and apply with a projector that is stopped again before anything is counted."""
    positions = await Ledger(runtime).append(events)
    projector = Projector(runtime.log, runtime.engine)
    task = asyncio.create_task(projector.run())
    try:
        for position in positions:
            assert await projector.wait(position, 30)
    finally:
        projector.stop()
        await task


def poller(page: str, name: str) -> str:
    """The URL the page's poller asks every second."""
    found = re.search(rf'<div id="{name}-poll" hx-get="([^"]+)"', page)
    assert found, f"no {name} poller"
    return html.unescape(found.group(1))


def token_of(url: str) -> str:
    return re.search(r"since=([^&]+)", url).group(1)


async def test_the_runs_list_poll_costs_one_row_and_draws_only_this_organisations_changed_rows(runtime):
    await store_key(runtime.control, OTHER_KEY, "org_b")
    mine = [RunScript(f"run_live_{i}", docs=2) for i in range(3)]
    theirs = RunScript("run_live_theirs", docs=2, org_id="org_b")
    await project(runtime, [experiment("exp_1"), theirs.created(), *(s.created() for s in mine)])
    async with console(runtime) as client, console(runtime, OTHER_KEY) as other:
        page = (await client.get("/console/runs")).text
        url = poller(page, "runs")
        assert re.fullmatch(r"1\.[1-9]\d*", token_of(url))  # read-model version 1, org_a's own version: no offsets
        assert "run_live_theirs" not in page
        with counting() as idle:
            assert (await client.get(url)).status_code == 204
        idle = idle.without(*AUTH)
        assert (idle.statements, idle.rows, idle.json_values) == (1, 1, 0), idle

        await project(runtime, [theirs.passed("doc_0", 0)])
        with counting() as after_theirs:
            assert (await client.get(url)).status_code == 204  # another organisation's write: nothing here
        after_theirs = after_theirs.without(*AUTH)
        assert (after_theirs.rows, after_theirs.json_values) == (1, 0), after_theirs
        assert (await client.get("/console/runs")).text == page
        assert (await other.get(poller((await other.get("/console/runs")).text, "runs"))).status_code == 204

        await project(runtime, [mine[1].passed("doc_0", 0)])
        with counting() as changed:
            answer = await client.get(url)
        changed = changed.without(*AUTH)
        assert answer.status_code == 200
        assert re.findall(r'<tr id="run-([^"]+)"', answer.text) == ["run_live_1"]  # that row, nothing else
        assert 'data-k="passes-done">1<' in answer.text
        assert changed.json_values == 1, changed  # its resource: no state decoded
        assert changed.rows <= 1 + len(mine) + 1, changed  # the version, the page's ids, the changed row
        assert token_of(poller(answer.text, "runs")) != token_of(url)
        assert (await client.get(poller(answer.text, "runs"))).status_code == 204


async def test_a_new_run_is_inserted_at_the_top_and_the_page_keeps_its_rows(runtime):
    first, second = RunScript("run_live_old", docs=1), RunScript("run_live_new", docs=1)
    second.tick = 60  # created a minute later: newest first
    await project(runtime, [experiment("exp_1"), first.created()])
    async with console(runtime) as client:
        url = poller((await client.get("/console/runs")).text, "runs")
        await project(runtime, [second.created()])
        answer = (await client.get(url)).text
    assert re.findall(r'<tr id="run-([^"]+)"', answer) == ["run_live_new"]
    assert 'hx-swap-oob="afterbegin:#runs-body"' in answer and "run_live_old" not in answer


async def test_the_run_page_poll_draws_the_counters_and_the_changed_documents_only(runtime):
    await store_key(runtime.control, OTHER_KEY, "org_b")
    run, sibling = RunScript("run_live_page", docs=3), RunScript("run_live_sibling", docs=1)
    theirs = RunScript("run_live_their_page", docs=1, org_id="org_b")
    await project(runtime, [experiment("exp_1"), run.created(), run.queued(), run.started(), sibling.created(),
                            theirs.created()])
    async with console(runtime) as client:
        page = (await client.get("/console/runs/run_live_page")).text
        url = poller(page, "run")
        assert re.findall(r'<tr id="doc-(\d+)"', page) == ["0", "1", "2"]
        with counting() as idle:
            assert (await client.get(url)).status_code == 204
        idle = idle.without(*AUTH)
        assert (idle.statements, idle.rows, idle.json_values) == (1, 1, 0), idle

        await project(runtime, [theirs.passed("doc_0", 0), sibling.passed("doc_0", 0)])  # not this run
        assert (await client.get(url)).status_code == 204

        await project(runtime, [run.passed("doc_1", 0), run.passed("doc_1", 1)])
        with counting() as changed:
            answer = await client.get(url)
        changed = changed.without(*AUTH)
        assert answer.status_code == 200
        assert re.findall(r'<tr id="doc-(\d+)"', answer.text) == ["1"]
        assert 'id="run-head"' in answer.text and 'data-k="passes-done">2<' in answer.text
        assert changed.json_values == 2, changed  # the run's resource and that document's row
        assert changed.rows <= 3, changed

        await project(runtime, [run.cancel()])  # every document's shown status follows the run's
        answer = (await client.get(poller(answer.text, "run"))).text
        assert re.findall(r'<tr id="doc-(\d+)"', answer) == ["0", "1", "2"]
        assert 'id="cancel-form" hx-swap-oob="delete"' in answer and "hx-trigger" not in answer  # it stops


async def test_a_long_runs_page_reads_one_page_of_documents(runtime):
    run = RunScript("run_live_long", docs=120)
    await project(runtime, [experiment("exp_1"), run.created()])
    async with console(runtime) as client:
        await client.get("/console/runs")  # the key, looked up once
        with counting() as cost:
            page = (await client.get("/console/runs/run_live_long")).text
        cost = cost.without(*AUTH)
        assert re.findall(r'<tr id="doc-(\d+)"', page) == [str(i) for i in range(50)]
        # the run's version and resource, one page of documents (and the one after it, to know there is more)
        assert (cost.statements, cost.rows, cost.json_values) == (3, 1 + 1 + 51, 1 + 51), cost
        following = re.search(r'id="documents-next" href="([^"]+)"', page).group(1)
        second = (await client.get(html.unescape(following))).text
        assert re.findall(r'<tr id="doc-(\d+)"', second) == [str(i) for i in range(50, 100)]
        assert 'lo=50&amp;hi=99' in second
