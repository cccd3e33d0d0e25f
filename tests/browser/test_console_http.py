"""The console's session and live-update contracts over plain HTTP (no browser):
sign-in only from the console's own page, the session cookie (a random id, never the
key) and its flags, sessions that end with sign-out and with their key, CSRF on the
forms, sign-in redirects, the poll's 204, and API paths keeping their JSON errors."""
from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from services.console.session import COOKIE, LOGIN_COOKIE
from services.console.session_store import Session
from tests.browser.conftest import KEY
from tests.server import create_key
from tests import console_session
from tests.browser.pages import Story, passes
from tests.console_session import login_form, sign_in_sync as sign_in
from tests.server import ServerProcess
from tests.waiting import wait_for


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("console-http"), {"RUNLEDGER_BOOTSTRAP_KEY": KEY}) as process:
        yield process


def console(server, key: str | None = KEY) -> httpx.Client:
    """A client signed in with `key` (None: not signed in, and not opened yet)."""
    client = httpx.Client(base_url=server.url, timeout=30)
    if key is not None:
        assert sign_in(client, key).status_code == 303
    return client


@contextlib.contextmanager
def signed_in(server, key: str = KEY):
    with console_session.signed_in(server.url, key) as client:
        yield client


def form_token(client: httpx.Client, page: str = "/console/runs") -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get(page).text).group(1)


def keys_cli(server, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "services.cli", "keys", *args, "--data-dir", str(server.data_dir)],
                          env=server.env, capture_output=True, text=True, check=True, timeout=60)
    return done.stdout


def test_sign_in_sets_a_session_cookie_that_is_not_the_key_and_never_puts_the_key_in_a_url(server):
    with httpx.Client(base_url=server.url) as client:
        refused = client.post("/console/login", data={"api_key": "rl_not_a_key", "login_token": login_form(client)})
        assert refused.status_code == 401 and COOKIE not in refused.headers.get("set-cookie", "")
        answer = sign_in(client, KEY)
        again = sign_in(client, KEY)
    assert answer.status_code == 303 and answer.headers["location"] == "/console/runs"
    session = answer.cookies[COOKIE]
    assert KEY not in session and KEY not in answer.headers["location"] and len(session) >= 40
    assert again.cookies[COOKIE] != session  # a random id per sign-in, not derived from the key
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(COOKIE + "="))
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/console"} <= flags
    assert "secure" not in flags  # plainly loopback http: a Secure cookie would never come back


@pytest.mark.parametrize("headers", [
    {"Host": "console.example.com"},  # a proxy on this host, passing the public name
    {"X-Forwarded-Proto": "https"},  # a TLS proxy uvicorn trusts (loopback, by default)
], ids=["public-host", "tls-proxy"])
def test_the_session_cookie_is_secure_unless_the_server_is_plainly_loopback_http(server, headers):
    with httpx.Client(base_url=server.url, headers=headers) as client:
        answer = sign_in(client, KEY)
    assert answer.status_code == 303, answer.text
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(COOKIE + "="))
    assert "secure" in {part.strip().lower() for part in cookie.split(";")[1:]}


@pytest.mark.parametrize("headers", [
    {"Origin": "https://attacker.example", "Sec-Fetch-Site": "cross-site"},
    {"Origin": "https://attacker.example"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
], ids=["origin-and-fetch-site", "origin", "fetch-site", "same-site"])
def test_a_sign_in_from_another_site_is_refused(server, headers):
    with httpx.Client(base_url=server.url) as client:
        answer = sign_in(client, KEY, **headers)
        assert answer.status_code == 403 and COOKIE not in answer.headers.get("set-cookie", "")
        assert client.get("/console/runs").headers["location"] == "/console/login"


def test_a_sign_in_without_the_pages_own_token_is_refused(server):
    with httpx.Client(base_url=server.url) as client:  # what a cross-site form can send: no login cookie
        assert client.post("/console/login", data={"api_key": KEY}).status_code == 403
        assert client.post("/console/login", data={"api_key": KEY, "login_token": "guessed"}).status_code == 403
        token = login_form(client)
        forged = client.post("/console/login", data={"api_key": KEY, "login_token": token + "x"})
        assert forged.status_code == 403 and COOKIE not in forged.headers.get("set-cookie", "")
        same_origin = sign_in(client, KEY, Origin=server.url, **{"Sec-Fetch-Site": "same-origin"})
        assert same_origin.status_code == 303  # the console's own page, as a browser sends it
    assert LOGIN_COOKIE not in same_origin.cookies or not same_origin.cookies[LOGIN_COOKIE]


def test_pages_without_a_session_send_you_to_sign_in(server):
    with console(server, key=None) as client:
        assert client.get("/console/runs").headers["location"] == "/console/login"
        poll = client.get("/console/runs/rows", headers={"HX-Request": "true"})
        assert poll.headers["hx-redirect"] == "/console/login"
    with httpx.Client(base_url=server.url, cookies={COOKIE: KEY}) as client:  # the old cookie held the key
        assert client.get("/console/runs").headers["location"] == "/console/login"


def test_a_session_ends_at_sign_out_even_if_the_browser_keeps_its_cookie(server):
    with signed_in(server) as client:
        session = client.cookies[COOKIE]
        assert client.post("/console/logout", data={"csrf": form_token(client)}).status_code == 303
    with httpx.Client(base_url=server.url, cookies={COOKIE: session}) as replayed:
        wait_for(lambda: replayed.get("/console/runs").headers.get("location"),
                 lambda location: location == "/console/login", timeout=10)


@pytest.mark.parametrize("how", ["revoke", "rotate"])
def test_every_session_of_a_key_ends_when_the_key_is_revoked_or_rotated(server, how):
    key = create_key(server, "sessions_org")
    first, second = console(server, key), console(server, key)
    for client in (first, second):
        assert client.get("/console/runs").status_code == 200
    keys_cli(server, how, key)
    for client in (first, second):  # within the session cache's TTL on every replica
        wait_for(lambda: client.get("/console/runs").headers.get("location"),
                 lambda location: location == "/console/login", timeout=10)


def test_a_session_ends_after_its_idle_time_and_its_absolute_age():
    now, idle = datetime(2026, 1, 1, 12, tzinfo=timezone.utc), timedelta(hours=12)
    session = Session("key_1", "org", "tenant", None, created_at=now - timedelta(days=1),
                      expires_at=now + timedelta(days=6), last_seen_at=now - timedelta(hours=1))
    assert session.alive(now, idle)
    assert not session.alive(now + timedelta(hours=11, seconds=1), idle)  # 12 h since last seen
    assert not Session(**{**session.__dict__, "expires_at": now}).alive(now, idle)  # past its absolute end
    assert not Session(**{**session.__dict__, "revoked_at": now}).alive(now, idle)  # its key revoked


def test_cancel_and_sign_out_need_the_forms_csrf_token(server):
    story = Story(server, KEY)
    run_id, _ = story.run(story.experiment("csrf"))
    with signed_in(server) as client, signed_in(server) as someone_else:
        for fields in ({}, {"csrf": "forged"}, {"csrf": form_token(someone_else)}):
            refused = client.post(f"/console/runs/{run_id}/cancel", data=fields)
            assert refused.status_code == 403, fields
            assert client.post("/console/logout", data=fields).status_code == 403
        cross_site = client.post(f"/console/runs/{run_id}/cancel", data={"csrf": form_token(client)},
                                 headers={"Origin": "https://attacker.example", "Sec-Fetch-Site": "cross-site"})
        assert cross_site.status_code == 403
        assert story.run_status(run_id) in ("pending", "queued")
        done = client.post(f"/console/runs/{run_id}/cancel", data={"csrf": form_token(client), "reason": "test"})
        assert done.status_code == 303
    assert story.run_status(run_id) == "cancelled"


def test_the_runs_poll_answers_204_until_something_is_applied(server):
    story = Story(server, KEY)
    experiment = story.experiment("poll")
    with signed_in(server) as client:
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
