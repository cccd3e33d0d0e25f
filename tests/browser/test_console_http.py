"""The console's session and live-update contracts over plain HTTP (no browser):
the cookie's flags, CSRF on the forms, sign-in redirects, the poll's 204, and API
paths keeping their JSON errors."""
from __future__ import annotations

import re

import httpx
import pytest

from services.console.session import COOKIE, csrf_token
from tests.browser.conftest import KEY
from tests.browser.pages import Story
from tests.server import ServerProcess


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
