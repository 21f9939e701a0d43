"""Driving the web console in headless Chromium (Selenium with Debian's chromium-driver).

``start_browser`` launches Debian's ``chromium`` through ``chromedriver`` with an empty profile
and everything that would reach the network switched off. ``Console`` is what a test does with
it: log in, open a page, find a row by name, open a dialog, wait (polling with a timeout, never a
fixed sleep) and save a screenshot under ``test-artifacts/screenshots/``.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from tests.conftest import REQUIRE, wait_until

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("MOTION_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MOTION_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--disable-extensions", "--disable-default-apps",
                 "--no-default-browser-check", "--window-size=1440,1100"]


def browser_missing() -> str | None:
    """Why headless Chromium cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} is missing (apt-get install -y {package}; .ci/run installs it)"
    return None


def require_browser() -> None:
    import pytest

    reason = browser_missing()
    if reason:
        if REQUIRE:
            pytest.fail(reason + " [MOTION_REQUIRE_SERVICES=1: missing services fail]", pytrace=False)
        pytest.skip(reason)


def start_browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    # An empty profile of our own: with a used one Chromium tries the network for its updates.
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='motion-chromium-')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    # A Service with the driver's path: Selenium Manager (which downloads drivers) never runs.
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


class Console:
    """One browser on the console at ``base_url``."""

    def __init__(self, driver, base_url: str, test_name: str):
        self.driver = driver
        self.base_url = base_url.rstrip("/")
        self.prefix = re.sub(r"[^A-Za-z0-9_]+", "-", test_name.removeprefix("test_"))[:60]

    # -- finding things ------------------------------------------------------------------------
    def find(self, css: str, root=None):
        from selenium.webdriver.common.by import By

        return (root or self.driver).find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str, root=None):
        from selenium.webdriver.common.by import By

        return (root or self.driver).find_elements(By.CSS_SELECTOR, css)

    def banner(self, which: str = "error") -> str:
        node = self.find(f"#{which}")
        return node.text if node.is_displayed() else ""

    def until(self, predicate, what: str, timeout: float = 60):
        """Poll ``predicate`` until truthy; a timeout names ``what`` and the page's error banner."""
        from selenium.common.exceptions import (ElementClickInterceptedException, ElementNotInteractableException,
                                                NoSuchElementException, StaleElementReferenceException)

        # Pages redraw while a test looks at them: an element can go stale or be covered for a moment.
        transient = (NoSuchElementException, StaleElementReferenceException, ElementNotInteractableException,
                     ElementClickInterceptedException)

        def attempt():
            try:
                return predicate()
            except transient:
                return None
        try:
            return wait_until(attempt, timeout=timeout, interval=0.1, what=what)
        except AssertionError as exc:
            self.screenshot(f"timeout-{re.sub(r'[^a-z0-9]+', '-', what.lower())[:40]}")
            raise AssertionError(f"{exc}; error banner: {self.banner() or '(none)'}") from None

    def text(self, css: str) -> str:
        return self.until(lambda: self.find(css).text or " ", f"the text of {css}")

    # -- doing things --------------------------------------------------------------------------
    def click(self, css: str, root=None) -> None:
        """Click the element ``css`` names, finding it anew if a redraw replaced it."""
        self.until(lambda: self.find(css, root).click() or True, f"clicking {css}")

    def open(self) -> None:
        self.driver.get(self.base_url + "/")
        self.until(lambda: self.find("#login-page").is_displayed() or self.find("#nav").is_displayed(),
                   "the console to load")

    def login(self, username: str, password: str) -> None:
        self.find("#login-username").clear()
        self.find("#login-username").send_keys(username)
        self.find("#login-password").send_keys(password)
        self.find("#login-submit").click()
        self.until(lambda: self.find("#nav").is_displayed() or self.find("#login-error").is_displayed(),
                   "the login to be answered")

    def goto(self, page: str) -> None:
        """Open a page from the navigation and wait until its table has been drawn."""
        self.click(f'#nav a[data-page="{page}"]')
        self.until(lambda: self.find(f"#{page}-page").is_displayed()
                   and self.find(f"#{page}-page .updated").text, f"the {page} page")

    def row(self, table: str, name: str):
        return self.until(lambda: self.find(f'#{table}-table tr[data-name="{name}"]'),
                          f"row {name} in {table}")

    def row_css(self, table: str, name: str, inside: str = "") -> str:
        return f'#{table}-table tr[data-name="{name}"] {inside}'.strip()

    def row_cells(self, table: str, name: str) -> list[str]:
        """The texts of a row's cells, read in one go (a redraw between two reads would mix)."""
        return self.until(lambda: self.cells(self.find(self.row_css(table, name))), f"row {name} in {table}")

    def migrate(self, table: str, name: str):
        """Press Migrate on a row of Storage or Instances; the dialog, once it has settled."""
        self.click(self.row_css(table, name, "button.migrate"))
        return self.dialog("volume-dialog" if table == "volumes" else "vm-dialog")

    def cells(self, row) -> list[str]:
        return [cell.text for cell in self.find_all("td", row)]

    def dialog(self, dialog_id: str):
        node = self.until(lambda: (d := self.find(f"#{dialog_id}")).is_displayed() and d,
                          f"dialog {dialog_id}")
        # Settled: the choices are listed, or the dialog says why not.
        self.until(lambda: self.find_all(".choices tbody tr", node)
                   or self.find(".dialog-error", node).is_displayed(), f"{dialog_id} to list its choices")
        return node

    @staticmethod
    def job(jobid: str, inside: str = "") -> str:
        """The CSS selector of a job's row on the Jobs page (or of something inside it)."""
        return f'#jobs-table tr[data-jobid="{jobid}"] {inside}'.strip()

    def job_status(self, jobid: str) -> str:
        return self.until(lambda: self.find(self.job(jobid)).get_attribute("data-status"), f"job {jobid}")

    def new_job(self) -> str:
        """The id of the job just started from a dialog (the Jobs page shows it highlighted)."""
        return self.until(lambda: self.find("#jobs-table tr.highlight").get_attribute("data-jobid"),
                          "the new job's row")

    def screenshot(self, step: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.prefix}-{step}.png"
        self.driver.save_screenshot(str(path))
        return path

    def requests_sent(self) -> list[dict]:
        """Every HTTP request the page sent since the last call: {method, url, body}."""
        import json

        sent = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                request = message["params"]["request"]
                sent.append({"method": request["method"], "url": request["url"],
                             "body": request.get("postData", "")})
        return sent

    def console_log(self) -> str:
        try:
            return "\n".join(f"{e['level']} {e['message']}" for e in self.driver.get_log("browser"))
        except Exception as exc:  # a diagnostic only; never hide the test's own failure
            return f"(browser log unavailable: {exc})"
