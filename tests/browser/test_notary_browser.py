"""Tamper evidence in the console, in headless Chromium: a finished run's page says
"history proven: N records, head signed at T" and offers the proof bundle, which checks
offline; the operations page shows every partition's signed head. Screenshots of both."""
from __future__ import annotations

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from projections.notary.bundle import check
from tests.browser.conftest import KEY
from tests.server import create_key
from tests.browser.pages import Story, passes, shoot, shows, text_of, wait

ACME = {"total": 100, "vendor": "ACME"}


def test_a_runs_history_is_proven_and_the_heads_are_shown(browser, console_server, screenshots):
    server, d = console_server, browser
    shots = screenshots / server.backend.replace("+", "-")
    shots.mkdir(exist_ok=True)
    mine = Story(server, KEY)
    run_id, docs = mine.run(mine.experiment("proven"))
    mine.emit(run_id, [{"type": "RunStarted", "payload": {"worker": "browser-test"}},
                       *[p for doc in docs for p in passes(doc, [ACME, ACME, ACME])]])
    wait(d, lambda _: mine.run_status(run_id) == "completed")

    sign_in(d, server.url, KEY)
    d.get(f"{server.url}/console/runs/{run_id}")
    summary = wait(d, shows("#proven-summary")).text
    records = int(d.find_element(By.ID, "proven").get_attribute("data-records"))
    assert records == 1 + 1 + 3 * len(docs)  # RunCreated, RunStarted, the passes
    assert summary.startswith(f"history proven: {records} records, head signed at 20") and summary.endswith(" UTC")
    link = d.find_element(By.ID, "proof-download").get_attribute("href")
    shoot(d, shots, "15-run-history-proven")

    cookie = d.get_cookie("runledger_console")["value"]
    bundle = httpx.get(link, cookies={"runledger_console": cookie}, timeout=60)
    assert bundle.status_code == 200 and "attachment" in bundle.headers["content-disposition"]
    outcome = check(bundle.json())
    assert outcome.ok and outcome.records == records, outcome.failure

    sign_in(d, server.url, create_key(server, "ops", admin=True))
    d.get(f"{server.url}/console/operations")
    wait(d, shows("table.heads"))
    rows = d.find_elements(By.CSS_SELECTOR, "table.heads tbody tr")
    assert rows and all(len(r.find_elements(By.CSS_SELECTOR, "td")) == 4 for r in rows)
    assert text_of(d, "#signed-heads h2").startswith("Signed tree heads")
    shoot(d, shots, "16-operations-signed-heads")


def sign_in(d, url: str, key: str) -> None:
    d.get(f"{url}/console/login")
    d.find_element(By.ID, "api_key").send_keys(key, Keys.ENTER)
    wait(d, shows("#runs-body"))
