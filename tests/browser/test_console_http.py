"""The console's session and live-update contracts over plain HTTP (no browser):
the cookie's flags, CSRF on the forms, sign-in redirects, the poll's 204, and API
paths keeping their JSON errors."""
from __future__ import annotations

import re

import httpx
import pytest

from services.console.session import COOKIE, csrf_token
from tests.browser.conftest import KEY
from tests.browser.pages import Story, passes
from tests.server import ServerProcess
from tests.waiting import wait_for


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("console-http"), {"RUNLEDGER_BOOTSTRAP_KEY": KEY}) as process:
        yield process


def console(server, key: str | None = KEY) -> httpx.Client:
    return httpx.Client(base_url=server.url, cookies={COOKIE: key} if key else None, timeout=30)


def test_sign_in_sets_an_httponly_strict_cookie_and_never_puts_the_key_in_a_url(server):
    with httpx.Client(base_url=server.url) as client:
        refused = client.post("/console/login", data={"api_key": "rl_not_a_key"})
        assert refused.status_code == 401 and "set-cookie" not in refused.headers
        answer = client.post("/console/login", data={"api_key": KEY})
    assert answer.status_code == 303 and answer.headers["location"] == "/console/runs"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie
    assert KEY not in answer.headers["location"]


def test_pages_without_a_session_send_you_to_sign_in(server):
    with console(server, key=None) as client:
        assert client.get("/console/runs").headers["location"] == "/console/login"
        poll = client.get("/console/runs/rows", headers={"HX-Request": "true"})
        assert poll.headers["hx-redirect"] == "/console/login"
    with console(server, key="rl_revoked_or_unknown") as client:
        assert client.get("/console/runs").headers["location"] == "/console/login"


def test_cancel_and_sign_out_need_the_forms_csrf_token(server):
    story = Story(server, KEY)
    run_id, _ = story.run(story.experiment("csrf"))
    with console(server) as client:
        for fields in ({}, {"csrf": "forged"}, {"csrf": csrf_token("rl_someone_else")}):
            refused = client.post(f"/console/runs/{run_id}/cancel", data=fields)
            assert refused.status_code == 403, fields
            assert client.post("/console/logout", data=fields).status_code == 403
        assert story.run_status(run_id) in ("pending", "queued")
        done = client.post(f"/console/runs/{run_id}/cancel", data={"csrf": csrf_token(KEY), "reason": "test"})
        assert done.status_code == 303
    assert story.run_status(run_id) == "cancelled"


def test_the_runs_poll_answers_204_until_something_is_applied(server):
    story = Story(server, KEY)
    experiment = story.experiment("poll")
    with console(server) as client:
        token = re.search(r'data-token="([^"]+)"', client.get("/console/runs/rows").text).group(1)
        assert client.get("/console/runs/rows", params={"since": token}).status_code == 204
        run_id, _ = story.run(experiment)  # answered once projected (read-your-writes)
        fresh = client.get("/console/runs/rows", params={"since": token})
    assert fresh.status_code == 200 and f'id="run-{run_id}"' in fresh.text


def test_api_paths_keep_their_json_errors(server):
    answer = httpx.get(f"{server.url}/v1/workflows/experiments/runs/run_missing", headers={"Api-Key": KEY})
    assert answer.status_code == 404 and answer.json()["detail"]["code"] == "run_not_found"
    page = console(server).get("/console/runs/run_missing")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")


def test_metrics_page_explains_no_metrics_and_stale_metrics_in_words(server):
    story = Story(server, KEY)
    experiment = story.experiment("states")
    run_id, docs = story.run(experiment)
    page = console(server).get(f"/console/runs/{run_id}/metrics").text
    assert 'id="no-metrics"' in page and "No metrics yet" in page
    story.emit(run_id, [e for doc in docs for e in passes(doc, [{"total": 1}] * 3)])
    wait_for(lambda: story.run_status(run_id), lambda status: status == "completed")
    assert 'id="likelihoods"' in console(server).get(f"/console/runs/{run_id}/metrics").text
    assert story.client.patch(f"/v1/workflows/experiments/{experiment}", json={"n_consensus": 5}).status_code == 200
    stale = console(server).get(f"/console/runs/{run_id}/metrics").text
    assert 'id="stale"' in stale and "the block's definition has changed since" in stale
    assert 'id="likelihoods"' not in stale
    anyway = console(server).get(f"/console/runs/{run_id}/metrics", params={"allow_stale": "true"}).text
    assert 'id="likelihoods"' in anyway and "stale, shown on request" in anyway


def test_classifier_metrics_show_the_confusion_matrix(server):
    story = Story(server, KEY)
    run_id, docs = story.run(story.experiment("labels", block="labels", kind="classifier"))
    invoice, receipt = {"category": "invoice"}, {"category": "receipt"}
    story.emit(run_id, passes(docs[0], [invoice, invoice, receipt]) + passes(docs[1], [receipt] * 3))
    wait_for(lambda: story.run_status(run_id), lambda status: status == "completed")
    page = console(server).get(f"/console/runs/{run_id}/metrics").text
    matrix = page[page.index('id="confusion"'):page.index("</table>", page.index('id="confusion"'))]
    rows = {row[0]: row[1:] for row in (re.findall(r">([^<>]+)</t[hd]>", r) for r in matrix.split("<tr>")[2:])}
    assert rows == {"invoice": ["66.7%", "33.3%"], "receipt": ["·", "100.0%"]}


def test_the_timeline_filters_by_type_and_outcome_and_shows_why_an_event_was_rejected(server):
    story = Story(server, KEY)
    run_id, docs = story.run(story.experiment("timeline"))
    story.emit(run_id, passes(docs[0], [{"total": 1}] * 2))
    story.emit(run_id, [{"type": "DocumentPassCompleted",
                         "payload": {"document_id": "doc_not_in_this_run", "pass_index": 0, "output": {}}}])
    client = console(server)
    wait_for(lambda: client.get(f"/console/runs/{run_id}/timeline", params={"outcome": "rejected"}).text,
             lambda page: 'class="rejected"' in page)

    def rows(**params) -> list[str]:
        page = client.get(f"/console/runs/{run_id}/timeline", params=params).text
        return re.findall(r'<tr id="ev-\d+" class="(rejected)?">', page)

    assert len(rows()) >= 4  # RunCreated (and whatever lifecycle events), two passes, the stray pass
    assert len(rows(type="DocumentPassCompleted")) == 3
    assert rows(outcome="rejected") == ["rejected"]
    assert len(rows(type="DocumentPassCompleted", outcome="accepted")) == 2
    rejected = client.get(f"/console/runs/{run_id}/timeline", params={"outcome": "rejected"}).text
    assert "doc_not_in_this_run" in rejected and 'class="reason"' in rejected
