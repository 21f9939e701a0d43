"""The benchmarks run and print their reports, each in a tiny configuration.

Benchmarks are not tests: nothing here asserts a speed. Each script is run as its own process on a
fresh database and the test Redis db, the way a person runs it, and must end with its results: the
figures, the floor measured in the same run, and the ratio against the target.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]
ROOT = Path(__file__).resolve().parents[2]


def run_bench(script: str, *args: str, timeout: float = 240) -> str:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], cwd=ROOT, text=True,
                         capture_output=True, timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert out.returncode == 0, f"{script} exited with {out.returncode}:\n{out.stdout}\n{out.stderr[-4000:]}"
    return out.stdout


def services(pg_url: str, redis_url: str) -> list[str]:
    return ["--database-url", pg_url, "--redis-url", redis_url]


def test_the_pipeline_benchmark_reports_migrations_per_second_against_the_celery_floor(pg_url, redis_url):
    report = run_bench("pipeline.py", "--n", "6", "--repeat", "1", "--hosts", "4", "--poll-intervals", "0.01",
                       *services(pg_url, redis_url))
    assert "results (medians of 1; N=6, workers=2)" in report
    assert "threads:8, MOTION_POLL_INTERVAL=0.01:" in report and "migrations/s; floor" in report
    assert "ratio" in report and "target >= 0.7" in report and "failed jobs 0" in report
    assert "of the chain floor" in report and "its cpu ms per migration: agent" in report


def test_the_worker_drain_benchmark_reports_jobs_per_second_and_cpu_per_job(pg_url, redis_url):
    report = run_bench("worker_drain.py", "--n", "6", "--rounds", "1", "--modes", "prefork,threads:2",
                       *services(pg_url, redis_url))
    assert "round 1, prefork: submitted 6" in report and "round 1, threads:2: submitted 6" in report
    assert "worker processes" in report
    assert report.count("failed 0; cpu ms per job: worker") == 2 and "jobs/s" in report


def test_the_runner_profile_reports_statements_and_cpu_per_job(pg_url, redis_url):
    report = run_bench("runner_profile.py", "--jobs", "8", *services(pg_url, redis_url))
    assert "jobs {'succeeded': " in report and "worker CPU" in report and "PostgreSQL CPU" in report
    assert "per job: BEGIN 2, COMMIT 2," in report and "statements" in report


def test_the_api_benchmark_reports_submissions_and_polls_against_the_api_floor(pg_url, redis_url):

    report = run_bench("api.py", "--duration", "1", "--repeat", "1", "--volumes", "150", "--connections", "4",
                       *services(pg_url, redis_url))
    assert "results (medians of 1; 4 clients, gunicorn -w 2)" in report
    for kind in ("submit", "poll"):
        assert f"  {kind:<6}: ours" in report
    assert report.count("target >= 0.5") == 2 and "p99" in report


def test_the_drain_benchmark_reports_the_makespan_against_the_ideal_bound_without_timeouts(pg_url, redis_url):
    report = run_bench("drain.py", "--volumes", "4", "--hosts", "1", "--sizes", "1,2", "--bandwidth", "4",
                       "--repeat", "1", "--warm-up", "0", *services(pg_url, redis_url))
    assert "results (median of 1): makespan" in report and "bound" in report
    assert "target <= 1.1" in report and "timeouts 0" in report and "failed 0" in report


def test_the_copy_benchmark_reports_the_agents_copy_rate_against_cp(tmp_path):
    report = run_bench("copy_rate.py", "--size-mib", "8", "--repeat", "1", "--dir", str(tmp_path))
    assert "results (medians of 1; 8 MiB)" in report
    assert "ratio to cp " in report and "target >= 0.9" in report


def test_the_agent_cpu_benchmark_reports_cpu_per_command_for_each_tree(tmp_path):
    report = run_bench("agent_cpu.py", "--n", "8", "--repeat", "1", "--warm-up", "4", "--clients", "2",
                       "--hosts", "2", "--tree", f"a={ROOT}", "--tree", f"b={ROOT}", "--dir", str(tmp_path))
    assert "round 1, a: agent cpu" in report and "round 1, b: agent cpu" in report
    assert "results (medians of 1; N=8, 2 clients):" in report
    assert "  a: agent cpu" in report and "ms per command" in report and "commands/s" in report
