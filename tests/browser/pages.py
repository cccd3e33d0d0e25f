"""Setting up a story over HTTP, and small helpers for driving the console."""
from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path

import httpx
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.server import ServerProcess

WORKFLOW, BLOCK = "wf_console", "invoice_fields"


class Story:
    """An organisation's API, used by the test to make things happen while the page is open."""

    def __init__(self, server: ServerProcess, key: str):
        self.client = httpx.Client(base_url=server.url, headers={"Api-Key": key}, timeout=60)

    def experiment(self, name: str, documents: int = 2, n: int = 3, block: str = BLOCK, kind: str = "extract") -> str:
        assert self.client.put(f"/v1/workflows/{WORKFLOW}/blocks/{block}",
                               json={"type": kind, "config": {}}).status_code in (200, 201)
        docs = [{"handle_inputs": {"invoice": {"type": "json", "data": {"name": name, "n": i}}}}
                for i in range(documents)]
        answer = self.client.post("/v1/workflows/experiments", json={
            "workflow_id": WORKFLOW, "block_id": block, "documents": docs, "n_consensus": n, "name": name})
        assert answer.status_code == 201, answer.text
        return answer.json()["id"]

    def run(self, experiment_id: str) -> tuple[str, list[str]]:
        answer = self.client.post("/v1/workflows/experiments/runs", json={"experiment_id": experiment_id})
        assert answer.status_code == 201, answer.text
        run_id = answer.json()["id"]
        results = self.client.get("/v1/workflows/experiments/results",
                                  params={"run_id": run_id, "order": "asc", "limit": 100}).json()
        return run_id, [r["document_id"] for r in results["data"]]

    def emit(self, run_id: str, events: list[dict]) -> None:
        answer = self.client.post("/v1/ledger/events", json={"events": [{**e, "run_id": run_id} for e in events]})
        assert answer.status_code == 202, answer.text

    def run_status(self, run_id: str) -> str:
        return self.client.get(f"/v1/workflows/experiments/runs/{run_id}").json()["lifecycle"]["status"]


def passes(document_id: str, outputs: list[dict]) -> list[dict]:
    return [{"type": "DocumentPassCompleted", "payload": {"document_id": document_id, "pass_index": i, "output": out}}
            for i, out in enumerate(outputs)]


def wait(driver, condition, timeout: float = 60, message: str = ""):
    """Wait on a condition (htmx swaps elements out from under a check: that is retried)."""
    waiting = WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,))
    return waiting.until(condition, message)


def text_of(driver, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).text.strip()


def shows(css: str, text: str | None = None, attribute: str | None = None):
    """A wait condition: an element matches `css` and, if given, its text (or `attribute`)
    equals `text`. Returns the element."""
    def check(driver):
        found = driver.find_elements(By.CSS_SELECTOR, css)
        if not found:
            return False
        value = found[0].get_attribute(attribute) if attribute else found[0].text.strip()
        return found[0] if text is None or value == text else False
    return check


def shoot(driver, where: Path, name: str) -> None:
    """A full-page screenshot: the window is stretched to the page's height first."""
    height = driver.execute_script("return Math.max(document.documentElement.scrollHeight, 600)")
    driver.set_window_size(1360, min(height + 140, 4000))  # the window's chrome takes some of it
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(where / f"{name}.png"))
    driver.set_window_size(1360, 900)


def steady_block(block_type: str, config: dict, handle_inputs: dict, pass_index: int) -> dict:
    """The block a `runledger worker` runs in the browser story: a little slow, so the
    run is seen in progress; pass 0 disagrees on the vendor."""
    time.sleep(0.3)
    return {"total": 100, "vendor": "Globex" if pass_index == 0 else "ACME"}


@contextlib.contextmanager
def worker(server: ServerProcess, key: str):
    """`runledger worker` against the server (its log; emitting over HTTP), stopped on exit."""
    log_path = server.data_dir / "console-worker.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "worker", "--block", "tests.browser.pages:steady_block",
             "--api-url", server.url, "--data-dir", str(server.data_dir), "--concurrency", "1"],
            env={**server.env, "RUNLEDGER_API_KEY": key}, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
