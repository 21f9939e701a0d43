"""The chaos tool's small configuration end to end (bench/chaos.py, docs/reliability.md).

About fifty migrations of volumes and of VMs with their volumes run through two Celery worker
processes (prefork, then the threads pool: three jobs in flight per process) and two throttled agents on PostgreSQL and a private Redis, while two workers and an
agent are killed with SIGKILL mid-copy and started again, a destination pool goes offline and
comes back, and Redis restarts. The tool then checks every invariant itself - every job
terminal, every volume's data complete on its recorded pool and nowhere else, nothing left
Migrating, no partial copy, no host above its limit - and exits 0 only if none is violated.
"""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import missing_service

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]
ROOT = Path(__file__).resolve().parents[2]


def chaos(*args: str, work: Path) -> subprocess.CompletedProcess:
    """Run the chaos tool; the timeout only keeps a hung run from hanging the suite."""
    return subprocess.run([sys.executable, str(ROOT / "bench" / "chaos.py"), *args, "--work-dir", str(work)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)


def figures(pattern: str, text: str) -> tuple[int, ...]:
    found = re.search(pattern, text)
    assert found, f"the report has no line matching {pattern!r}:\n{text[-4000:]}"
    return tuple(int(g) for g in found.groups())


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_fifty_migrations_under_kills_a_pool_outage_and_a_redis_restart_break_no_invariant(pg_url, redis_url,
                                                                                             tmp_path, pool):
    # Given the production processes on a fresh database and a private Redis (redis_url only
    # makes this test skip or fail like the other e2e tests when Redis is missing)
    if shutil.which("redis-server") is None:
        missing_service("redis-server", FileNotFoundError("redis-server is not on PATH"))
    # When 50 migrations run while 2 workers and 1 agent are killed, 1 pool goes offline and
    # Redis restarts
    # (with the threads pool each worker process holds up to 3 jobs, so a kill strands several)
    run = chaos("--migrations", "50", "--workers", "2", "--pool", pool, "--kills", "3", "--pool-outages", "1",
                "--redis-restarts", "1", "--seed", "7", "--database-url", pg_url, work=tmp_path / "chaos")
    report = run.stdout
    # Then the tool found no violation, and its report counts what happened
    assert run.returncode == 0, report[-8000:] + run.stderr[-4000:]
    assert "violations: 0" in report
    workers, agents, outages, restarts = figures(
        r"kills: \d+ \(worker (\d+), agent (\d+)\); faults: \d+ \(pool outages (\d+), redis restarts (\d+),", report)
    assert workers >= 2 and agents >= 1 and outages >= 1 and restarts == 1
    submitted, = figures(r"migrations submitted: (\d+)", report)
    successes, failures = figures(r"successes: (\d+); failures: (\d+)", report)
    assert submitted == 50 and successes + failures == 50 and successes > 0
    recoveries, ended, stranded = figures(r"recoveries: (\d+) \(stranded jobs that ended: (\d+) of (\d+)", report)
    assert recoveries == ended == stranded >= 1  # the kills and the restart stranded jobs; all of them ended
    for check in ("every job terminal", "no volume left Migrating", "no partial copies in any pool",
                  "every volume's data complete where recorded, only there", "no VM left Migrating",
                  "per-host concurrency within the limit"):
        assert f"check {check}: ok" in report


def test_migrations_through_two_database_crashes_break_no_invariant(pg_url, tmp_path):
    # Given the production processes on a PostgreSQL server of the run's own (pg_url only makes
    # this test skip or fail like the other e2e tests when PostgreSQL is missing)
    for tool in ("redis-server", "initdb"):
        if shutil.which(tool) is None:
            missing_service(tool, FileNotFoundError(f"{tool} is not on PATH"))
    # When 30 migrations run while that server crashes twice (pg_ctl stop -m immediate, then
    # crash recovery) and an agent is killed
    run = chaos("--migrations", "30", "--workers", "2", "--kills", "1", "--pool-outages", "0",
                "--redis-restarts", "0", "--db-restarts", "2", "--seed", "11", work=tmp_path / "chaos")
    report = run.stdout
    # Then no invariant broke: every job ended, every volume's data is where it is recorded
    assert run.returncode == 0, report[-8000:] + run.stderr[-4000:]
    assert "violations: 0" in report
    restarts, = figures(r"database restarts (\d+)\)", report)
    assert restarts == 2
    submitted, = figures(r"migrations submitted: (\d+)", report)
    successes, failures = figures(r"successes: (\d+); failures: (\d+)", report)
    assert submitted == 30 and successes + failures == 30 and successes > 0
    hit, ended = figures(r"db-restart (\d+)/(\d+)", report)
    assert hit == ended >= 1  # the crashes caught jobs pending, and every one of them ended
    assert "Internal error" not in report  # the API said the database was unavailable
