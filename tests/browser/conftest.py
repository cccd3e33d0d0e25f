"""Headless Chromium (Debian's /usr/bin/chromium and chromedriver, through Selenium)
against a live `runledger serve`, one browser session per module.

Screenshots go to $RUNLEDGER_SCREENSHOTS, or a fresh temporary directory; the path is
printed so a CI run can keep them as artifacts."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.conftest import served_on, server_backends
from tests.server import ServerProcess

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
KEY = "rl_test_key_console_org"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1360,900")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/test_console_browser" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("the browser tests need Debian's chromium and chromium-driver (scripts/test.sh installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def screenshots() -> Path:
    where = Path(os.environ.get("RUNLEDGER_SCREENSHOTS") or tempfile.mkdtemp(prefix="runledger-screens-"))
    where.mkdir(parents=True, exist_ok=True)
    print(f"\nconsole screenshots: {where}")
    return where


@pytest.fixture(params=server_backends())
async def console_server(request, tmp_path):
    env, args = await served_on(request, tmp_path, {"RUNLEDGER_BOOTSTRAP_KEY": KEY, "RUNLEDGER_WAIT_TIMEOUT": "30"})
    server = ServerProcess(tmp_path / "server", env, args).start()
    server.backend = request.param
    try:
        yield server
    finally:
        server.stop()
