"""``motion keys`` and ``motion users`` manage accounts of a running embedded system (``motion up
--data-dir DIR`` in another process), and what they do takes effect at once."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from cs import CloudStack, CloudStackApiException

from tests.conftest import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]


class Running:
    def __init__(self, data_dir: Path, port: int):
        self.data_dir, self.endpoint = data_dir, f"http://127.0.0.1:{port}/client/api"


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """``motion up`` in its own process, as an operator runs it."""
    tmp = tmp_path_factory.mktemp("up")
    port = free_port()
    with open(tmp / "up.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "motion.cli", "up", "--data-dir", str(tmp / "data"),
                                 "--port", str(port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                env={**clean_env(), "PYTHONUNBUFFERED": "1"})
    try:
        wait_until(lambda: (tmp / "data" / "endpoints.json").exists() or proc.poll() is not None,
                   timeout=60, what="motion up")
        assert proc.poll() is None, (tmp / "up.log").read_text()
        yield Running(tmp / "data", port)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("MOTION_")}


def motion(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "motion.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, input=stdin, env=clean_env(), timeout=120)


def test_keys_are_created_listed_and_disabled_while_motion_up_runs(running):
    data_dir = str(running.data_dir)
    created = motion("keys", "create", "--role", "user", "--json", "--data-dir", data_dir)
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert list(key) == ["apikey", "secretkey"]
    api = CloudStack(endpoint=running.endpoint, key=key["apikey"], secret=key["secretkey"])
    assert api.listZones()["count"] == 1
    with pytest.raises(CloudStackApiException) as refused:
        api.listStoragePools()
    assert refused.value.error["errorcode"] == 432

    listed = motion("keys", "list", "--json", "--data-dir", data_dir)
    rows = json.loads(listed.stdout)
    assert key["apikey"] in {r["apikey"] for r in rows}
    assert key["secretkey"] not in listed.stdout

    disabled = motion("keys", "disable", key["apikey"], "--data-dir", data_dir)
    assert disabled.returncode == 0, disabled.stderr
    with pytest.raises(CloudStackApiException) as shut_out:
        api.listZones()
    assert shut_out.value.error["errorcode"] == 401


def test_a_user_created_from_the_shell_logs_in_to_the_running_system(running):
    made = motion("users", "create", "dana", "--role", "domainadmin", "--password-stdin", "--json",
                  "--data-dir", str(running.data_dir), stdin="dana's password\n")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout) == {"username": "dana", "account": "dana", "role": "domainadmin"}
    browser = requests.Session()
    login = browser.post(running.endpoint, data={"command": "login", "username": "dana", "domain": "/",
                                                 "password": "dana's password", "response": "json"})
    assert login.status_code == 200 and login.json()["loginresponse"]["type"] == "2"
    key = login.json()["loginresponse"]["sessionkey"]
    zones = browser.get(running.endpoint, params={"command": "listZones", "sessionkey": key, "response": "json"})
    assert zones.status_code == 200 and zones.json()["listzonesresponse"]["count"] == 1


def test_a_refused_shell_command_says_why_and_exits_2(tmp_path):
    refused = motion("keys", "disable", "no-such-key", "--data-dir", str(tmp_path / "data"))
    assert refused.returncode == 2 and "no user has this api key" in refused.stderr
    refused = motion("users", "create", "bad name", "--password-stdin", "--data-dir", str(tmp_path / "data"),
                     stdin="pw\n")
    assert refused.returncode == 2 and "invalid user name" in refused.stderr
