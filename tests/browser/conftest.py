"""Fixtures for the browser tests: a real embedded system (``motion up``: SQLite, in-process
broker, worker and simulated agents copying real bytes, throttled so progress can be seen) with a
login user, and a fresh headless Chromium per test.

Without Chromium, chromium-driver or selenium the tests skip with the reason, unless
MOTION_REQUIRE_SERVICES=1 (CI), which makes them fail. A failed test leaves a screenshot and the
browser's console log under ``test-artifacts/screenshots/``.
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from cs import CloudStack

from tests.browser.console import SCREENSHOTS, Console, require_browser, start_browser
from tests.conftest import wait_until
from tests.e2e.conftest import ROOT, Embedded

ADMIN = "admin-web"
PASSWORD = "correct horse battery staple"


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives the web console in headless Chromium")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so the browser fixture knows of a failure."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@dataclass
class System:
    """A running embedded system: its console URL, a cs client (root admin keys), the login."""

    base_url: str
    api: CloudStack
    data_dir: Path
    username: str = ADMIN
    password: str = PASSWORD

    def by_name(self, command: str, name: str) -> dict:
        found = getattr(self.api, command)(name=name, fetch_list=True)
        assert len(found) == 1, f"{command} name={name}: {found}"
        return found[0]


def start_system(tmp_path: Path, bandwidth: float) -> tuple[Embedded, System]:
    """Start ``motion up`` with the demo inventory and a login user ``admin-web``."""
    patch = pytest.MonkeyPatch()
    embedded = Embedded(tmp_path, patch, ["--bandwidth", str(bandwidth)])
    embedded.patch = patch
    made = subprocess.run([sys.executable, "-m", "motion.cli", "users", "create", ADMIN, "--role", "admin",
                           "--password-stdin", "--data-dir", str(embedded.data_dir)],
                          input=PASSWORD + "\n", cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stdout + made.stderr
    base_url = embedded.api.endpoint.rsplit("/client/api", 1)[0]
    wait_until(lambda: _answers(base_url), timeout=30, what="the console at /")
    return embedded, System(base_url, embedded.api, embedded.data_dir)


def stop_system(embedded: Embedded) -> None:
    """Stop ``motion up`` (SIGTERM); one that does not stop in time is killed, and the test says so."""
    try:
        embedded.stop()
    except subprocess.TimeoutExpired:
        embedded.proc.kill()
        embedded.proc.wait(timeout=30)
        raise AssertionError("motion up did not stop within 30 s of SIGTERM (killed); its log ends: "
                             + embedded.log_path.read_text()[-2000:]) from None
    finally:
        embedded.patch.undo()


def _answers(url: str) -> bool:
    try:
        return requests.get(url + "/", timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    """One system for a module's tests, at 1 MiB/s: a 4 MiB volume takes about 4 s to copy."""
    require_browser()
    embedded, made = start_system(tmp_path_factory.mktemp("console"), bandwidth=1)
    try:
        yield made
    finally:
        stop_system(embedded)


@pytest.fixture
def slow_system(tmp_path):
    """A system of its own at 0.25 MiB/s (a 4 MiB copy takes 16 s), for queued jobs."""
    require_browser()
    embedded, made = start_system(tmp_path, bandwidth=0.25)
    try:
        yield made
    finally:
        stop_system(embedded)


@pytest.fixture
def browser(request):
    """A fresh headless Chromium (empty profile, so no session carries over between tests)."""
    require_browser()
    driver = start_browser()
    try:
        yield driver
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            name = request.node.name[:80]
            try:
                driver.save_screenshot(str(SCREENSHOTS / f"FAILED-{name}.png"))
                log = "\n".join(f"{e['level']} {e['message']}" for e in driver.get_log("browser"))
                (SCREENSHOTS / f"FAILED-{name}.console.txt").write_text(log)
            except Exception as exc:  # diagnostics must not hide the failure itself
                print(f"could not save the failure screenshot: {exc}")
        driver.quit()


def console_for(driver, made: System, request) -> Console:
    return Console(driver, made.base_url, request.node.name)


@pytest.fixture
def console(browser, system, request) -> Console:
    """The console of the module's system, opened at its login page."""
    page = console_for(browser, system, request)
    page.open()
    return page
