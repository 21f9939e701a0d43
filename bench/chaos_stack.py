"""The processes of a chaos run, started the production way, and the means to kill them.

A PostgreSQL database of its own (created and dropped unless one is given), a private
``redis-server`` on a free port (so that it can be killed and started again on that port), host
agents (each serving the hosts of some clusters, throttled so that copies take seconds), Celery
worker processes, ``motion beat`` and the gunicorn API. Every process runs in its own session,
so SIGKILL takes it down whole (a Celery worker together with its pool children) and it can be
started again under the same name. bench/ does not import tests/: this is its own small copy of
the e2e machinery.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from bench._common import free_port, wait_for  # noqa: F401  (free_port: chaos.py takes it from here)

ROOT = Path(__file__).resolve().parents[1]
PG_SERVER = os.environ.get("MOTION_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2):
    """Poll ``predicate`` until it is truthy; raise RuntimeError after ``timeout`` seconds."""
    return wait_for(predicate, timeout, what, interval, error=RuntimeError)


def http_up(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def plain(url: str) -> str:
    """The psycopg form of a SQLAlchemy URL."""
    return url.replace("postgresql+psycopg://", "postgresql://")


def create_database(server_url: str = PG_SERVER) -> str:
    """A new empty database ``motion_chaos_<random>`` on the server; returns its URL."""
    import psycopg

    name = f"motion_chaos_{secrets.token_hex(4)}"
    with psycopg.connect(plain(server_url), autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server_url.rsplit('/', 1)[0]}/{name}"


def drop_database(url: str, server_url: str = PG_SERVER) -> None:
    import psycopg

    with psycopg.connect(plain(server_url), autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


class Processes:
    """Named child processes, each in its own session, with a log file per name.

    A process that ends without being killed here is a *crash*: ``check`` notes it (name, exit
    code, the log's last error line) once, and the caller decides whether to start it again.
    """

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}
        self.down: set[str] = set()  # killed on purpose, or crashed and noted; not started again yet
        self.crashes: list[tuple[str, int, str]] = []
        self.lock = threading.RLock()

    def _note_crash(self, name: str) -> bool:
        old = self.procs.get(name)
        if old is None or name in self.down or old.poll() is None:
            return False
        self.crashes.append((name, old.returncode, self.last_error(name)))
        self.down.add(name)
        return True

    def last_error(self, name: str) -> str:
        """The log's last CRITICAL line (plain text, or the message of a JSON log line)."""
        found = []
        for line in (self.log_dir / f"{name}.log").read_text(errors="replace").splitlines()[-400:]:
            if line.startswith("{"):
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                line = f"{entry.get('level')} {entry.get('logger')}: {entry.get('msg')}"
            if "CRITICAL" in line or "Unrecoverable" in line:
                found.append(line.strip()[:300])
        return found[-1] if found else "(no CRITICAL line in its log)"

    def start(self, name: str, argv: list[str], env: dict) -> subprocess.Popen:
        with self.lock:
            self._note_crash(name)
            with open(self.log_dir / f"{name}.log", "a") as log:
                log.write(f"\n===== chaos: start {name} at {time.strftime('%H:%M:%S')} =====\n")
                log.flush()
                proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
            self.procs[name] = proc
            self.down.discard(name)
            return proc

    def kill(self, name: str, sig=signal.SIGKILL) -> None:
        with self.lock:
            self._note_crash(name)
            proc = self.procs[name]
            self.down.add(name)
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass
            proc.wait(timeout=30)

    def alive(self, name: str) -> bool:
        return name in self.procs and self.procs[name].poll() is None

    def check(self) -> list[str]:
        """The processes that have ended by themselves since the last look."""
        with self.lock:
            return [name for name in list(self.procs) if self._note_crash(name)]

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
    """Database, private Redis, agents, workers, beat and API of one chaos run.

    ``agent_hosts`` maps an agent name to the host names it serves, ``agent_ports`` to its
    port (the inventory names ``http://127.0.0.1:<port>/hosts/<host>`` as each host's agent).
    Agents run with a storage-migration limit far above the orchestrator's, so that the peak
    they report shows what the orchestrator sent, not what their own queue let through.
    """

    def __init__(self, work: Path, database_url: str, agent_hosts: dict[str, list[str]],
                 agent_ports: dict[str, int], workers: int, concurrency: int, bandwidth: float,
                 agent_limit: int = 16, pool: str = "prefork"):
        self.work, self.database_url = work, database_url
        self.agent_hosts, self.agent_ports = agent_hosts, agent_ports
        self.agent_root = work / "agent"
        self.worker_names = [f"worker{i}" for i in range(workers)]
        self.generation = {name: 0 for name in self.worker_names}
        self.concurrency, self.bandwidth, self.agent_limit = concurrency, bandwidth, agent_limit
        self.pool = pool  # motion worker --pool: prefork (concurrency processes) or threads (jobs per process)
        self.procs = Processes(work)
        self.postgres = None  # the run's own PostgreSQL (bench.chaos_pg), when it crashes it
        self.redis_port, self.api_port = free_port(), free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.env = {**os.environ, "MOTION_DATABASE_URL": database_url, "MOTION_BROKER_URL": self.redis_url,
                    "MOTION_POLL_INTERVAL": "0.2", "MOTION_LEASE_SECONDS": "5", "PYTHONUNBUFFERED": "1",
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        self.key: dict = {}

    # -- one-off commands ------------------------------------------------------------------
    def motion(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "motion.cli", *args], env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"motion {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
        return done.stdout

    def prepare(self, inventory_file: Path, config: dict[str, str] | None = None) -> None:
        """Schema, inventory, global configuration and an admin key; then every process, and the
        volume files."""
        self.motion("db", "upgrade")
        self.motion("inventory", "load", str(inventory_file))
        self.set_config(config or {})
        self.key = json.loads(self.motion("keys", "create", "--role", "admin", "--json"))
        self.start_redis()
        for name in self.agent_hosts:
            self.start_agent(name)
        for name in self.worker_names:
            self.start_worker(name)
        self.start_beat()
        self.start_api()
        self.motion("inventory", "provision")

    def set_config(self, values: dict[str, str]) -> None:
        """Global configuration rows (``reconcile.truth.interval`` is set in the database only)."""
        import psycopg

        with psycopg.connect(plain(self.database_url), connect_timeout=10) as conn:
            for name, value in values.items():
                conn.execute("INSERT INTO configuration (name, value, default_value, category, description) "
                             "VALUES (%s, %s, %s, 'Advanced', 'set by the chaos tool') "
                             "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value", (name, value, value))

    # -- processes -------------------------------------------------------------------------
    def start_redis(self) -> None:
        binary = shutil.which("redis-server")
        if not binary:
            raise RuntimeError("redis-server is not installed; the chaos run needs a private Redis")
        self.procs.start("redis", [binary, "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no", "--dir", str(self.work)], self.env)
        wait_until(self.redis_pings, 20, "the private Redis")

    def redis_pings(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.redis_url, socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False

    def agent_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.agent_ports[name]}"

    def start_agent(self, name: str) -> None:
        argv = [sys.executable, "-m", "motion.cli", "agent", "--root", str(self.agent_root),
                "--port", str(self.agent_ports[name]), "--bandwidth", str(self.bandwidth),
                "--max-storage-migrations", str(self.agent_limit)]
        for host in self.agent_hosts[name]:
            argv += ["--host", host]
        self.procs.start(name, argv, self.env)
        wait_until(lambda: http_up(f"{self.agent_url(name)}/hosts"), 30, f"agent {name}")

    def start_worker(self, name: str) -> None:
        """A worker incarnation has its own id (``worker0.2``: worker0's second start)."""
        self.generation[name] += 1
        wid = f"{name}.{self.generation[name]}"
        self.procs.start(name, [sys.executable, "-m", "motion.cli", "worker", "--pool", self.pool, "--concurrency",
                                str(self.concurrency), "--loglevel", "info"], {**self.env, "MOTION_WORKER_ID": wid})

    def worker_id(self, name: str) -> str:
        return f"{name}.{self.generation[name]}"

    def ensure_running(self) -> list[str]:
        """Start again every process that is not running; returns the names started."""
        names = ["redis", *self.agent_hosts, *self.worker_names, "beat", "api"]
        down = [name for name in names if not self.procs.alive(name)]
        for name in down:
            self.restart(name)
        return down

    def restart(self, name: str) -> None:
        """Start ``name`` again unless it runs (the lock keeps two restarters from racing)."""
        with self.procs.lock:
            if not self.procs.alive(name):
                self._start(name)

    def _start(self, name: str) -> None:
        if name == "redis":
            self.start_redis()
        elif name in self.agent_hosts:
            self.start_agent(name)
        elif name in self.worker_names:
            self.start_worker(name)
        else:
            (self.start_beat if name == "beat" else self.start_api)()

    def start_beat(self) -> None:
        self.procs.start("beat", [sys.executable, "-m", "motion.cli", "beat", "--interval", "1"], self.env)

    def start_api(self) -> None:
        self.procs.start("api", [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{self.api_port}",
                                 "api:create_app()"], self.env)
        wait_until(lambda: http_up(f"http://127.0.0.1:{self.api_port}/"), 60, "the API")

    def host_base(self, host: str) -> str:
        agent = next(a for a, hosts in self.agent_hosts.items() if host in hosts)
        return f"{self.agent_url(agent)}/hosts/{host}"

    def stop(self) -> None:
        self.procs.stop()
