"""End to end on real parts: gunicorn API, Celery worker on Redis, host agent, PostgreSQL.

Each piece runs as its own process, started the way the Procfile starts it, and the test
drives them over HTTP with the ``cs`` CloudStack client.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from cs import CloudStack

from tests.conftest import DEMO_INVENTORY, free_port, wait_until
from tests.e2e.flow import failing_migration_rolls_back, migrate_and_verify

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]
ROOT = Path(__file__).resolve().parents[2]


def motion(*args, env, check=True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "motion.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=check, timeout=120)


class Processes:
    def __init__(self, log_dir: Path):
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.log_dir = log_dir

    def start(self, name: str, argv: list[str], env: dict) -> None:
        log = open(self.log_dir / f"{name}.log", "w")
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs.append((name, proc))

    def check_alive(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}: "
                                     f"{(self.log_dir / f'{name}.log').read_text()[-3000:]}")

    def stop(self) -> None:
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for _name, proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture
def stack(pg_url, redis_url, tmp_path):
    agent_port, api_port = free_port(), free_port()
    agent_root = tmp_path / "agent"
    env = {**os.environ, "MOTION_DATABASE_URL": pg_url, "MOTION_BROKER_URL": redis_url,
           "MOTION_AGENT_URL": f"http://127.0.0.1:{agent_port}/hosts/{{host}}",
           "MOTION_POLL_INTERVAL": "0.1", "PYTHONUNBUFFERED": "1"}
    motion("inventory", "load", str(DEMO_INVENTORY), env=env)
    key = json.loads(motion("keys", "create", "--role", "admin", "--json", env=env).stdout)
    procs = Processes(tmp_path)
    host_names = _host_names(pg_url)
    procs.start("agent", [sys.executable, "-m", "motion.cli", "agent", *sum((["--host", h] for h in host_names), []),
                          "--root", str(agent_root), "--port", str(agent_port)], env)
    procs.start("worker", [sys.executable, "-m", "motion.cli", "worker", "--concurrency", "2",
                           "--loglevel", "info"], env)
    procs.start("api", [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{api_port}",
                        "api:create_app()"], env)
    try:
        wait_until(lambda: _up(f"http://127.0.0.1:{agent_port}/hosts"), what="agent", timeout=30)
        wait_until(lambda: _up(f"http://127.0.0.1:{api_port}/"), what="api", timeout=30)
        procs.check_alive()
        motion("inventory", "provision", env=env)
        api = CloudStack(endpoint=f"http://127.0.0.1:{api_port}/client/api", key=key["apikey"],
                         secret=key["secretkey"], poll_interval=0.2, job_timeout=120)
        yield {"api": api, "agent_url": f"http://127.0.0.1:{agent_port}", "agent_root": agent_root,
               "procs": procs}
        procs.check_alive()
    finally:
        procs.stop()


def _host_names(url: str) -> list[str]:
    from sqlalchemy import select

    from orchestrator.db import Database
    from orchestrator.models import Host

    db = Database(url)
    with db.uow() as uow:
        names = list(uow.session.scalars(select(Host.name).order_by(Host.id)))
    db.dispose()
    return names


def _up(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_a_volume_migrates_through_api_worker_and_agent_processes(stack):
    assert stack["api"].listZones()["count"] >= 1
    migrate_and_verify(stack["api"], stack["agent_root"])


def test_an_agent_error_leaves_the_volume_ready_on_its_source_pool(stack):
    failing_migration_rolls_back(stack["api"], stack["agent_url"], stack["agent_root"])
