"""The same end-to-end flow on the embedded default (``motion up``: SQLite, in-process broker,
worker and agents), driven by the ``cs`` client configured from the cloudstack.ini it writes."""
import json
import os
import signal
import subprocess
import sys

import pytest

from tests.e2e.conftest import ROOT
from tests.e2e.flow import failing_migration_rolls_back, migrate_and_verify

pytestmark = pytest.mark.e2e


def test_a_volume_migrates_on_the_embedded_default(embedded):
    migrate_and_verify(embedded.api, embedded.agent_root)


def test_an_agent_error_rolls_back_on_the_embedded_default(embedded):
    failing_migration_rolls_back(embedded.api, embedded.agent_url, embedded.agent_root)


def test_the_cs_command_line_works_with_the_written_cloudstack_ini(embedded):
    out = subprocess.run([sys.executable, "-m", "cs", "listVolumes"], capture_output=True, text=True,
                         env={**os.environ, "CLOUDSTACK_CONFIG": str(embedded.data_dir / "cloudstack.ini")},
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["count"] >= 1


def test_motion_up_shuts_down_cleanly_on_sigterm(embedded):
    embedded.proc.send_signal(signal.SIGTERM)
    assert embedded.proc.wait(timeout=30) == 0
    assert "shutting down" in embedded.log_path.read_text()


def test_motion_demo_runs_scenario_1_and_exits_zero(tmp_path):
    out = subprocess.run([sys.executable, "-m", "motion.cli", "demo", "--data-dir", str(tmp_path / "demo")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "demo succeeded" in out.stdout
    assert "refused with 431" in out.stdout
