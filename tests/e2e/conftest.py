"""Fixtures that start the real processes: the production stack (gunicorn API, Celery workers on
Redis, host agent, PostgreSQL) and the embedded default (``motion up``)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from cs import CloudStack, read_config

from tests.conftest import DEMO_INVENTORY, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]


def motion(*args, env, check=True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "motion.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=check, timeout=180)


def up(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


class Processes:
    """Child processes with their logs; each in its own session so it can be killed whole."""

    def __init__(self, log_dir: Path):
        self.procs: dict[str, subprocess.Popen] = {}
        self.log_dir = log_dir

    def start(self, name: str, argv: list[str], env: dict) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "a")
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs[name] = proc
        return proc

    def kill(self, name: str, sig=signal.SIGKILL) -> None:
        proc = self.procs[name]
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
        proc.wait(timeout=30)

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text()

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}: {self.log(name)[-3000:]}")

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


class Stack:
    """The production processes on PostgreSQL and Redis, driven with the cs client."""

    def __init__(self, pg_url: str, redis_url: str, tmp_path: Path, inventory: Path = DEMO_INVENTORY,
                 workers: int = 1, bandwidth: float | None = None, pool: str = "prefork", concurrency: int = 2):
        self.agent_port, self.api_port = free_port(), free_port()
        self.agent_root = tmp_path / "agent"
        self.agent_url = f"http://127.0.0.1:{self.agent_port}"
        self.env = {**os.environ, "MOTION_DATABASE_URL": pg_url, "MOTION_BROKER_URL": redis_url,
                    "MOTION_AGENT_URL": f"{self.agent_url}/hosts/{{host}}", "MOTION_POLL_INTERVAL": "0.1",
                    "MOTION_LEASE_SECONDS": "5", "PYTHONUNBUFFERED": "1"}
        self.procs = Processes(tmp_path)
        self.bandwidth = bandwidth
        self.pool, self.concurrency = pool, concurrency  # motion worker --pool, --concurrency
        motion("inventory", "load", str(inventory), env=self.env)
        self.key = json.loads(motion("keys", "create", "--role", "admin", "--json", env=self.env).stdout)
        self.start_agent()
        for index in range(workers):
            self.start_worker(f"worker{index}")
        self.procs.start("beat", [sys.executable, "-m", "motion.cli", "beat", "--interval", "1"], self.env)
        self.procs.start("api", [sys.executable, "-m", "gunicorn", "-w", "2", "-b",
                                 f"127.0.0.1:{self.api_port}", "api:create_app()"], self.env)
        wait_until(lambda: up(f"http://127.0.0.1:{self.api_port}/"), what="api", timeout=30)
        self.procs.check_alive()
        motion("inventory", "provision", env=self.env)
        self.api = CloudStack(endpoint=f"http://127.0.0.1:{self.api_port}/client/api", key=self.key["apikey"],
                              secret=self.key["secretkey"], poll_interval=0.2, job_timeout=180)

    def start_agent(self) -> None:
        argv = [sys.executable, "-m", "motion.cli", "agent", "--all-hosts", "--root", str(self.agent_root),
                "--port", str(self.agent_port)]
        if self.bandwidth:
            argv += ["--bandwidth", str(self.bandwidth)]
        self.procs.start("agent", argv, self.env)
        wait_until(lambda: up(f"{self.agent_url}/hosts"), what="agent", timeout=30)

    def start_worker(self, name: str) -> None:
        self.procs.start(name, [sys.executable, "-m", "motion.cli", "worker", "--pool", self.pool,
                                "--concurrency", str(self.concurrency), "--loglevel", "info"],
                         {**self.env, "MOTION_WORKER_ID": name})


@pytest.fixture
def stack(pg_url, redis_url, tmp_path):
    s = Stack(pg_url, redis_url, tmp_path)
    try:
        yield s
        s.procs.check_alive()
    finally:
        s.procs.stop()


@pytest.fixture
def make_stack(pg_url, redis_url, tmp_path):
    """Build a stack with options (inventory, workers, bandwidth, pool, concurrency); stopped at the end."""
    made = []

    def make(broker_url: str | None = None, **options) -> Stack:
        s = Stack(pg_url, broker_url or redis_url, tmp_path, **options)
        made.append(s)
        return s
    yield make
    for s in made:
        s.procs.stop()


class Embedded:
    def __init__(self, tmp_path: Path, monkeypatch, extra: list[str] = ()):
        self.data_dir = tmp_path / "data"
        self.log_path = tmp_path / "up.log"
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "motion.cli", "up", "--data-dir", str(self.data_dir),
                                      "--port", str(free_port()), *extra], cwd=ROOT, stdout=log,
                                     stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        wait_until(lambda: (self.data_dir / "endpoints.json").exists() or self.proc.poll() is not None,
                   timeout=60, what="motion up")
        assert self.proc.poll() is None, self.log_path.read_text()
        monkeypatch.setenv("CLOUDSTACK_CONFIG", str(self.data_dir / "cloudstack.ini"))
        self.api = CloudStack(**{**read_config(), "poll_interval": 0.2, "job_timeout": 180})
        endpoints = json.loads((self.data_dir / "endpoints.json").read_text())
        self.agent_url, self.agent_root = endpoints["agent"], Path(endpoints["agent_root"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)


@pytest.fixture
def embedded(tmp_path, monkeypatch):
    e = Embedded(tmp_path, monkeypatch)
    try:
        yield e
    finally:
        e.stop()
