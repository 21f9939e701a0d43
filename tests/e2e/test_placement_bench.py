"""bench/placement.py runs in a tiny configuration and prints its report (figures are not tested)."""
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
ROOT = Path(__file__).resolve().parents[2]


def test_the_placement_benchmark_runs_and_reports_both_commands(pg_url):
    admin = pg_url.rsplit("/", 1)[0] + "/postgres"
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "placement.py"), "--zones", "1", "--clusters", "2",
                          "--hosts", "2", "--pools", "2", "--samples", "3"], capture_output=True, text=True,
                         timeout=300, env={**__import__("os").environ, "BENCH_DATABASE_URL": admin})
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(l for l in out.stdout.splitlines() if l.startswith("placement zones=1"))
    assert "findStoragePoolsForMigration p50=" in line and "findHostsForMigration p50=" in line
