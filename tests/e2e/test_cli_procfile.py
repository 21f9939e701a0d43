"""``honcho start`` runs the Procfile - gunicorn API, Celery worker with its metrics port, beat and
agent - on PostgreSQL and Redis; the ``motion`` client drives it with a ``cloudstack.ini``; the
API, the worker and the agent answer Prometheus scrapes; Celery's own ``inspect`` reaches the worker."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import DEMO_INVENTORY, free_port, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]
ROOT = Path(__file__).resolve().parents[2]


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def scrape(url: str) -> dict:
    out: dict = {}
    for family in text_string_to_metric_families(requests.get(url, timeout=10).text):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            out[key] = out.get(key, 0) + s.value
    return out


def total(scraped: dict, name: str, **labels) -> float:
    return sum(v for (n, ls), v in scraped.items() if n == name and set(labels.items()) <= set(ls))


class Honcho:
    def __init__(self, pg_url: str, redis_url: str, tmp: Path):
        bin_dir = tmp / "bin"  # `motion` as the installed console script would be
        bin_dir.mkdir()
        (bin_dir / "motion").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m motion.cli "$@"\n')
        (bin_dir / "motion").chmod(0o755)
        self.api_port, self.agent_port, self.metrics_port = free_port(), free_port(), free_port()
        self.api = f"http://127.0.0.1:{self.api_port}"
        self.agent = f"http://127.0.0.1:{self.agent_port}"
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith(("MOTION_", "CLOUDSTACK_"))},
                    "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
                    "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
                    "MOTION_DATABASE_URL": pg_url, "MOTION_BROKER_URL": redis_url,
                    "MOTION_API_PORT": str(self.api_port), "MOTION_AGENT_PORT": str(self.agent_port),
                    "MOTION_METRICS_PORT": str(self.metrics_port), "MOTION_AGENT_ROOT": str(tmp / "agent"),
                    "MOTION_AGENT_URL": f"{self.agent}/hosts/{{host}}", "MOTION_POLL_INTERVAL": "0.1"}
        self.motion("inventory", "load", str(DEMO_INVENTORY))
        key = json.loads(self.motion("keys", "create", "--role", "admin", "--json").stdout)
        self.ini = tmp / "cloudstack.ini"
        self.ini.write_text(f"[cloudstack]\nendpoint = {self.api}/client/api\nkey = {key['apikey']}\n"
                            f"secret = {key['secretkey']}\n")
        self.log = tmp / "honcho.log"
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "honcho", "-e", os.devnull, "--no-colour",
                                          "-f", str(ROOT / "Procfile"), "start"], cwd=ROOT, env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def motion(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "motion.cli", *args], cwd=ROOT, capture_output=True,
                              text=True, env={**self.env, **env}, timeout=180)
        assert done.returncode == 0, done.stderr
        return done

    def alive(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()[-5000:]
        return True

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def honcho(pg_url, redis_url, tmp_path):
    h = Honcho(pg_url, redis_url, tmp_path)
    try:
        for url in (f"{h.api}/ready", f"{h.agent}/hosts", f"http://127.0.0.1:{h.metrics_port}/metrics"):
            wait_until(lambda: h.alive() and answers(url), timeout=60, what=url)
        h.motion("inventory", "provision")
        yield h
    finally:
        h.stop()


def test_honcho_runs_the_procfile_and_every_process_answers_for_its_part(honcho):
    done = honcho.motion("migrate", "volume", "web-1-root", "a-gold-2", "--wait", "--json",
                         CLOUDSTACK_CONFIG=str(honcho.ini))
    final = json.loads(done.stdout.splitlines()[-1])
    assert final["jobstatus"] == 1 and final["jobresult"]["volume"]["storage"] == "a-gold-2"

    for _ in range(20):  # spread over the two gunicorn workers; the scrape adds both up
        requests.get(f"{honcho.api}/client/api", params={"command": "listZones"}, timeout=10)
    for _ in range(3):
        api = scrape(f"{honcho.api}/metrics")
        assert total(api, "motion_api_requests_total", command="listZones", code="401") == 20
        assert total(api, "motion_jobs", command="migrateVolume", status="succeeded") == 1

    worker = scrape(f"http://127.0.0.1:{honcho.metrics_port}/metrics")
    assert total(worker, "motion_worker_job_runs_total", outcome="succeeded") >= 1
    assert total(worker, "motion_agent_call_seconds_count", operation="post_command") >= 1

    agent = scrape(f"{honcho.agent}/metrics")
    assert total(agent, "motion_agent_commands", state="succeeded") == 1
    assert total(agent, "motion_agent_storage_migrations_limit", host="hv-a1") == 2

    ping = subprocess.run([sys.executable, "-m", "celery", "-A", "workers.app", "inspect", "ping", "--timeout", "10"],
                          cwd=ROOT, env=honcho.env, capture_output=True, text=True, timeout=60)
    assert ping.returncode == 0 and "pong" in ping.stdout, ping.stdout + ping.stderr
