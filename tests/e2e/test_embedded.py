"""The same end-to-end flow on the embedded default (``motion up``: SQLite, in-process broker,
worker and agents), driven by the ``cs`` client configured from the cloudstack.ini it writes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cs import CloudStack, read_config

from tests.conftest import free_port, wait_until
from tests.e2e.flow import failing_migration_rolls_back, migrate_and_verify

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def embedded(tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    log = open(tmp_path / "up.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "motion.cli", "up", "--data-dir", str(data_dir),
                             "--port", str(free_port())], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_until(lambda: (data_dir / "endpoints.json").exists() or proc.poll() is not None,
                   timeout=60, what="motion up")
        assert proc.poll() is None, (tmp_path / "up.log").read_text()
        monkeypatch.setenv("CLOUDSTACK_CONFIG", str(data_dir / "cloudstack.ini"))
        config = read_config()
        api = CloudStack(**{**config, "poll_interval": 0.2, "job_timeout": 120})
        endpoints = json.loads((data_dir / "endpoints.json").read_text())
        yield {"api": api, "proc": proc, "data_dir": data_dir, "agent_url": endpoints["agent"],
               "agent_root": Path(endpoints["agent_root"]), "log": tmp_path / "up.log"}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def test_a_volume_migrates_on_the_embedded_default(embedded):
    migrate_and_verify(embedded["api"], embedded["agent_root"])


def test_an_agent_error_rolls_back_on_the_embedded_default(embedded):
    failing_migration_rolls_back(embedded["api"], embedded["agent_url"], embedded["agent_root"])


def test_the_cs_command_line_works_with_the_written_cloudstack_ini(embedded):
    out = subprocess.run([sys.executable, "-m", "cs", "listVolumes"], capture_output=True, text=True,
                         env={**os.environ, "CLOUDSTACK_CONFIG": str(embedded["data_dir"] / "cloudstack.ini")},
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["count"] >= 1


def test_motion_up_shuts_down_cleanly_on_sigterm(embedded):
    embedded["proc"].send_signal(signal.SIGTERM)
    assert embedded["proc"].wait(timeout=30) == 0
    assert "shutting down" in embedded["log"].read_text()


def test_motion_demo_runs_scenario_1_and_exits_zero(tmp_path):
    out = subprocess.run([sys.executable, "-m", "motion.cli", "demo", "--data-dir", str(tmp_path / "demo")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "demo succeeded" in out.stdout
    assert "refused with 431" in out.stdout
