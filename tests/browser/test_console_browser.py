"""The console in headless Chromium, as its users meet it: sign in, watch a run finish
live with no reload (passes posted over HTTP while the page is open, then a run taken
from pending to completed by a real `runledger worker`; only the changed rows are drawn
again, on the runs list and on a run's page), read its timeline and go back in time with the as-of slider, read
its metrics down to one field's votes and the events that carried them, cancel another
run, sign out; another organisation's run is never reachable by URL.

One test per backend (embedded default; Kafka + PostgreSQL), each saving a screenshot
of every page (see conftest for where)."""
from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.browser.conftest import KEY
from tests.server import create_key
from tests.browser.pages import Story, passes, shoot, shows, text_of, wait, worker

ACME, GLOBEX = {"total": 100, "vendor": "ACME"}, {"total": 100, "vendor": "Globex"}


def test_console_story(browser, console_server, screenshots):
    server, d = console_server, browser
    shots = screenshots / server.backend.replace("+", "-")
    shots.mkdir(exist_ok=True)
    mine, theirs = Story(server, KEY), Story(server, create_key(server, "other_org"))
    foreign_run, _ = theirs.run(theirs.experiment("theirs"))
    experiment = mine.experiment("invoices")
    run_id, docs = mine.run(experiment)

    sign_in(d, server.url, shots)
    wait(d, shows(f"#run-{run_id}"))
    assert text_of(d, "#org") == "default"
    session_stays_in_an_httponly_cookie(d)
    assert foreign_run not in d.page_source
    assert d.find_element(By.ID, f"run-{run_id}").get_attribute("data-status") in ("pending", "queued")
    shoot(d, shots, "02-runs-queued")

    # The run progresses while the page is open; the row follows without a reload, and
    # only the rows that changed are drawn again (the table body is never swapped).
    d.execute_script("window.sameDocument = true; window.runsBody = document.getElementById('runs-body')")
    mine.emit(run_id, [{"type": "RunStarted", "payload": {"worker": "browser-test"}}, *passes(docs[0], [ACME, ACME, GLOBEX])])
    wait(d, shows(f"#run-{run_id}", "running", attribute="data-status"))
    wait(d, shows(f"#run-{run_id} [data-k=docs-done]", "1"))
    assert text_of(d, f"#run-{run_id} [data-k=passes-done]") == "3"
    shoot(d, shots, "03-runs-running")
    second_id, _ = mine.run(experiment)  # a new run appears, too
    mine.emit(run_id, passes(docs[1], [ACME, ACME, ACME]))
    wait(d, shows(f"#run-{run_id}", "completed", attribute="data-status"))
    wait(d, shows(f"#run-{second_id}"))
    assert text_of(d, f"#run-{run_id} [data-k=docs-done]") == "2"
    assert d.execute_script("return window.sameDocument") is True, "the page reloaded"
    assert d.execute_script("return document.getElementById('runs-body') === window.runsBody"), "the table was redrawn"
    ids = [row.get_attribute("id") for row in d.find_elements(By.CSS_SELECTOR, "#runs-body tr")]
    assert ids[:2] == [f"run-{second_id}", f"run-{run_id}"]  # the new run inserted at the top
    shoot(d, shots, "04-runs-live")

    d.find_element(By.LINK_TEXT, run_id).click()
    wait(d, shows("#run-status", "completed"))
    shoot(d, shots, "05-run-overview")
    timeline_and_as_of(d, shots)
    metrics_and_votes(d, shots, docs[0])
    a_run_page_follows_its_documents_live(d, server.url, mine, experiment, shots)
    a_long_timeline_pages_jumps_and_travels(d, server.url, mine, experiment, shots)
    cancel(d, server.url, second_id, shots)
    assert mine.run_status(second_id) == "cancelled"
    a_worker_takes_a_run_to_completed_live(d, server, mine, experiment, shots)
    experiments(d, server.url, experiment, shots)
    never_another_organisations_run(d, server.url, foreign_run, shots)
    sign_out(d, server.url)
    operations_for_an_admin(d, server.url, create_key(server, "ops", admin=True), shots)


def sign_in(d, url: str, shots) -> None:
    d.get(url + "/")
    wait(d, shows("#api_key"))
    assert d.current_url.endswith("/console/login")
    d.find_element(By.ID, "api_key").send_keys("not-a-key", Keys.ENTER)
    wait(d, shows("#login-error"))
    shoot(d, shots, "01-sign-in")
    d.find_element(By.ID, "api_key").send_keys(KEY)
    d.find_element(By.ID, "sign-in").click()
    wait(d, shows("#runs-body"))


def session_stays_in_an_httponly_cookie(d) -> None:
    cookie = d.get_cookie("runledger_console")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    assert KEY not in cookie["value"]  # a session id: the browser never keeps the key
    assert d.execute_script("return document.cookie") == ""  # scripts cannot read it
    stored = d.execute_script("return JSON.stringify([{...localStorage}, {...sessionStorage}])")
    assert KEY not in stored  # (htmx keeps the current path in sessionStorage: no secret)
    assert KEY not in d.current_url and KEY not in d.page_source


def timeline_and_as_of(d, shots) -> None:
    d.find_element(By.ID, "tab-timeline").click()
    wait(d, shows("#as-of"))
    types = [row.text for row in d.find_elements(By.CSS_SELECTOR, "table.timeline tbody tr td:nth-child(5)")]
    assert types[0].startswith("RunCreated") and sum("DocumentPassCompleted" in t for t in types) == 6
    shoot(d, shots, "06-timeline")
    slider = d.find_element(By.ID, "as-of")
    slider.send_keys(Keys.HOME)  # the run as it was after its first event
    wait(d, shows("#as-of-state", "0", attribute="data-index"))
    assert text_of(d, "#as-of-done") == "0"
    assert text_of(d, "#as-of-passes").startswith("0 /")
    third_pass = [i for i, t in enumerate(types) if "DocumentPassCompleted" in t][2]  # finishes the first document
    for _ in range(third_pass):
        slider.send_keys(Keys.ARROW_RIGHT)
    wait(d, shows("#as-of-state", str(third_pass), attribute="data-index"))
    assert text_of(d, "#as-of-passes").startswith("3 /") and text_of(d, "#as-of-done") == "1"
    shoot(d, shots, "07-timeline-as-of")


def a_long_timeline_pages_jumps_and_travels(d, url: str, mine: Story, experiment: str, shots) -> None:
    """A run with more events than a timeline page and than a snapshot's span (issue 17):
    the timeline shows one page, pages on, jumps to a position, and the slider goes
    anywhere in the history."""
    run_id, docs = mine.run(experiment)
    retries = [{"type": "DocumentPassFailed", "payload": {"document_id": docs[0], "pass_index": 0, "attempt": a,
                                                          "final": False, "error": {"message": f"retry {a}"}}}
               for a in range(1, 131)]
    stray = {"type": "DocumentPassCompleted", "payload": {"document_id": "doc_elsewhere", "pass_index": 0,
                                                          "output": ACME}}
    events = [{"type": "RunStarted", "payload": {"worker": "browser-test"}}, *retries[:60], stray,
              *passes(docs[0], [ACME, ACME, GLOBEX]), *retries[60:], *passes(docs[1], [ACME] * 3)]
    mine.emit(run_id, events)
    total = 1 + len(events)  # and RunCreated
    history = wait(d, lambda _: (found := mine.client.get(f"/v1/workflows/experiments/runs/{run_id}/events",
                                                          params={"order": "asc", "limit": 1000}).json()["data"])
                   and len(found) == total and found)
    d.get(f"{url}/console/runs/{run_id}/timeline")
    wait(d, shows("#as-of"))
    assert len(d.find_elements(By.CSS_SELECTOR, "table.timeline tbody tr")) == 50  # one page
    assert d.find_element(By.ID, "as-of").get_attribute("max") == str(total - 1)
    shoot(d, shots, "07b-timeline-long-first-page")
    d.find_element(By.CSS_SELECTOR, "a[rel=next]").click()
    wait(d, shows("a[rel=prev]"))
    assert text_of(d, "table.timeline tbody tr td.num") == "51"  # the next page starts at the 51st event

    stray_at = next(item for item in history if item["status"] == "rejected")
    d.find_element(By.ID, "t-at").send_keys(stray_at["position"], Keys.ENTER)  # jump to the rejected pass
    row = wait(d, shows(f"tr#ev-{stray_at['offset']}"))
    assert "rejected" in row.get_attribute("class") and "doc_elsewhere" in row.text
    shoot(d, shots, "07c-timeline-jump-to-position")

    slider = d.find_element(By.ID, "as-of")
    last_fact = max(i for i, item in enumerate(history) if item["type"] == "DocumentPassCompleted"
                    and item["status"] == "accepted" and item["payload"]["document_id"] == docs[0])
    d.execute_script("arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('change'))",
                     slider, last_fact)  # far into the history: from the nearest snapshot
    wait(d, shows("#as-of-state", str(last_fact), attribute="data-index"))
    assert text_of(d, "#as-of-done") == "1" and text_of(d, "#as-of-passes").startswith("3 /")
    slider.send_keys(Keys.END)
    wait(d, shows("#as-of-state", str(total - 1), attribute="data-index"))
    assert text_of(d, "#as-of-done") == "2" and text_of(d, "#as-of-passes").startswith("6 /")
    shoot(d, shots, "07d-timeline-long-as-of")


def metrics_and_votes(d, shots, document_id: str) -> None:
    d.find_element(By.ID, "tab-metrics").click()
    wait(d, shows("#likelihoods"))
    assert "vendor" in text_of(d, "#likelihoods")
    shoot(d, shots, "08-metrics")
    d.find_element(By.CSS_SELECTOR, f"a[href*='document_id={document_id}']").click()
    wait(d, shows("#targets"))
    d.find_element(By.CSS_SELECTOR, "a.votes-link[data-target='vendor']").click()
    wait(d, shows("table.votes"))
    votes = [a.text for a in d.find_elements(By.CSS_SELECTOR, "table.votes a.vote")]
    assert votes == ['"ACME"', '"ACME"', '"Globex"']
    shoot(d, shots, "09-metrics-votes")
    last = d.find_elements(By.CSS_SELECTOR, "table.votes a.vote")[2]
    anchor = last.get_attribute("href").rsplit("#", 1)[1]
    last.click()  # the vote's own event, in the timeline
    row = wait(d, shows(f"tr#{anchor}"))
    assert "DocumentPassCompleted" in row.text and "pass 2" in row.text


def cancel(d, url: str, run_id: str, shots) -> None:
    d.get(f"{url}/console/runs/{run_id}")
    d.find_element(By.ID, "cancel-reason").send_keys("wrong documents")
    d.find_element(By.ID, "cancel-run").click()
    wait(d, shows("#run-status", "cancelled"))
    assert "wrong documents" in d.page_source
    shoot(d, shots, "10-run-cancelled")


def a_run_page_follows_its_documents_live(d, url: str, mine: Story, experiment: str, shots) -> None:
    """A run's overview draws again only its counters and the document rows that changed."""
    run_id, docs = mine.run(experiment)
    d.get(f"{url}/console/runs/{run_id}")
    wait(d, shows("#doc-1"))
    d.execute_script("window.sameDocument = true")
    mine.emit(run_id, [{"type": "RunStarted", "payload": {"worker": "browser-test"}}])
    wait(d, shows("#run-status", "running"))  # every row follows its run's status: pending documents now queued
    wait(d, shows("#doc-1 .badge", "queued"))
    d.execute_script("window.untouched = document.getElementById('doc-1')")
    mine.emit(run_id, passes(docs[0], [ACME] * 3))
    wait(d, shows("#doc-0 .badge", "completed"))
    wait(d, shows("#run-head [data-k=passes-done]", "3"))
    assert d.execute_script("return document.getElementById('doc-1') === window.untouched"), "an unchanged row was redrawn"
    assert d.execute_script("return window.sameDocument") is True, "the page reloaded"
    shoot(d, shots, "05b-run-live")
    mine.emit(run_id, passes(docs[1], [ACME] * 3))
    wait(d, shows("#run-status", "completed"))
    assert not d.find_elements(By.ID, "cancel-form")  # a finished run cannot be cancelled: the form went with it


def a_worker_takes_a_run_to_completed_live(d, server, mine: Story, experiment: str, shots) -> None:
    run_id, _ = mine.run(experiment)
    d.get(f"{server.url}/console/runs")
    row = f"#run-{run_id}"
    assert wait(d, shows(row)).get_attribute("data-status") in ("pending", "queued")
    d.execute_script("window.sameDocument = true")
    seen: set[str] = set()

    def finished(driver):
        status = driver.find_element(By.CSS_SELECTOR, row).get_attribute("data-status")
        seen.add(status)
        return status == "completed"

    with worker(server, KEY):
        wait(d, finished, timeout=120)
    assert d.execute_script("return window.sameDocument") is True, "the page reloaded"
    assert text_of(d, f"{row} [data-k=passes-done]") == "6"
    shoot(d, shots, "10b-runs-worker-done")
    print(f"statuses seen while the worker ran: {sorted(seen)}")


def experiments(d, url: str, experiment_id: str, shots) -> None:
    d.get(f"{url}/console/experiments")
    wait(d, shows("#experiments"))
    shoot(d, shots, "11-experiments")
    d.find_element(By.CSS_SELECTOR, f"a[href='/console/experiments/{experiment_id}']").click()
    wait(d, shows("#score-chart"))
    shoot(d, shots, "12-experiment")


def never_another_organisations_run(d, url: str, foreign_run: str, shots) -> None:
    for path in ("", "/timeline", "/metrics", "/as-of?i=0", "/live"):
        d.get(f"{url}/console/runs/{foreign_run}{path}")
        assert "not found" in text_of(d, "#error-message"), path
        assert "theirs" not in d.page_source
    shoot(d, shots, "13-foreign-run-not-found")
    d.get(f"{url}/console/operations")  # a tenant key sees no operations
    assert "admin" in text_of(d, "#error-message")


def operations_for_an_admin(d, url: str, admin_key: str, shots) -> None:
    d.get(f"{url}/console/login")
    d.find_element(By.ID, "api_key").send_keys(admin_key, Keys.ENTER)
    wait(d, shows("#runs-body"))
    d.find_element(By.LINK_TEXT, "Operations").click()
    wait(d, shows("table.ops"))
    assert d.find_elements(By.CSS_SELECTOR, "table.ops tbody tr"), "no partitions listed"
    assert "Dead letters" in d.page_source
    shoot(d, shots, "14-operations")
    sign_out(d, url)


def sign_out(d, url: str) -> None:
    d.get(f"{url}/console/runs")
    d.find_element(By.ID, "sign-out").click()
    wait(d, shows("#api_key"))
    assert d.get_cookie("runledger_console") is None
    d.get(f"{url}/console/runs")
    wait(d, shows("#api_key"))  # signed out: back to sign-in
