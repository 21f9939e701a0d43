"""What the benchmarks share: a database and a Redis db, child processes, signed CloudStack URLs,
the floors of ``../shared/bench``, and the report's figures.

Every benchmark works on its own PostgreSQL database (created and migrated here, dropped at the
end, unless ``--database-url`` names one that is already migrated, as the tests do) and its own
Redis db (``--redis-url``, default ``redis://127.0.0.1:6379/12``, flushed before and after). The
production processes are started as production starts them (``gunicorn "api:create_app()"``,
``motion worker``, ``motion beat``, ``python -m agent``), each in its own session with its log in
the run's directory, and stopped at the end. The floors run from the shared folder, found next to
the repository (``../shared/bench``) or at ``$MOTION_FLOOR_DIR``.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import os
import re
import resource
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("MOTION_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("MOTION_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")


def floor_dir() -> Path:
    """The shared floors: ``$MOTION_FLOOR_DIR``, else ``<repo>/../shared/bench``."""
    return Path(os.environ.get("MOTION_FLOOR_DIR") or REPO.parent / "shared" / "bench")


def plain(url: str) -> str:
    """A libpq URL from an SQLAlchemy one (the floors and psycopg take these)."""
    return url.replace("postgresql+psycopg://", "postgresql://")


def add_service_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="an empty database already migrated to head "
                        "(default: a fresh database created on the server of $MOTION_BENCH_DATABASE_URL)")
    parser.add_argument("--redis-url", default=REDIS_URL, help=f"Redis db to use and flush (default {REDIS_URL})")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (logs) afterwards")


OWNER_KEY = "motion-bench:owner"  # who runs a benchmark on this Redis db: "host:pid"


def _running(owner: bytes | None) -> bool:
    """Whether the benchmark process named by an owner key still runs (on this machine)."""
    host, _, pid = (owner or b"").decode(errors="replace").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return bool(owner) and host != socket.gethostname()  # another machine's: assume it runs
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Services:
    """The run's database and Redis db; ``close()`` drops what it created and flushes Redis.

    Two benchmarks on one Redis db would take each other's job messages (a job id means another
    job in the other run's database) and flush each other's queues, so a run claims the db
    (``OWNER_KEY``) and refuses to start while another live run holds it."""

    def __init__(self, database_url: str | None, redis_url: str):
        import redis

        self.redis_url = redis_url
        self.redis = redis.Redis.from_url(redis_url)
        owner = self.redis.get(OWNER_KEY)
        if _running(owner):
            raise SystemExit(f"bench: another benchmark ({owner.decode(errors='replace')}) is using {redis_url}; "
                             f"wait for it or pass --redis-url with another db")
        self.redis.flushdb()
        self.redis.set(OWNER_KEY, f"{socket.gethostname()}:{os.getpid()}")
        self.created = None
        if database_url is None:
            import psycopg

            import migrations

            name = f"motion_bench_{secrets.token_hex(5)}"
            with psycopg.connect(plain(PG_ADMIN_URL), autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            database_url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
            self.created = name
            migrations.upgrade(database_url)
        self.database_url = database_url
        self._conn = None

    def sql(self, statement: str, params=()) -> list:
        """Run one statement on the run's database (one connection, kept: waits poll with it)."""
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(plain(self.database_url), autocommit=True)
        cur = self._conn.execute(statement, params)
        return cur.fetchall() if cur.description else []

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self.redis.flushdb()
        if self.created:
            import psycopg

            with psycopg.connect(plain(PG_ADMIN_URL), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.created}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05, error: type = SystemExit):
    """Poll ``predicate`` until it is truthy; raise ``error`` after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise error(f"bench: timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def http_up(url: str) -> bool:
    import requests

    try:
        return requests.get(url, timeout=2).status_code < 500
    except requests.RequestException:
        return False


class Procs:
    """Child processes, each in its own session with its log file under ``log_dir``."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], env: dict, cwd: Path = REPO) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "a")
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        log.close()
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def check(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise SystemExit(f"bench: {name} exited with {proc.returncode}:\n{self.log(name)[-3000:]}")

    def stop(self, name: str | None = None) -> None:
        names = [name] if name else list(reversed(self.procs))
        names = [n for n in names if n in self.procs]
        for n in names:
            proc = self.procs[n]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # the leader stops its children (celery: warm shutdown)
        for n in names:
            proc = self.procs.pop(n)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of its session
            except ProcessLookupError:
                pass
            proc.wait()


def motion_env(services: Services, agent_port: int, **extra: str) -> dict:
    env = {**os.environ, "MOTION_DATABASE_URL": services.database_url, "MOTION_BROKER_URL": services.redis_url,
           "MOTION_AGENT_URL": f"http://127.0.0.1:{agent_port}/hosts/{{host}}", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": str(REPO)}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start_agent(procs: Procs, env: dict, hosts: list[str], root: Path, port: int, *,
                zero_copy: bool = False, bandwidth: float | None = None, name: str = "agent") -> None:
    argv = [sys.executable, "-m", "agent", "--root", str(root), "--port", str(port)]
    for host in hosts:
        argv += ["--host", host]
    if zero_copy:
        argv.append("--zero-copy")
    if bandwidth:
        argv += ["--bandwidth", str(bandwidth)]
    procs.start(name, argv, env)
    wait_for(lambda: http_up(f"http://127.0.0.1:{port}/hosts"), 60, "the agent")


def start_worker(procs: Procs, env: dict, concurrency: int, name: str = "worker",
                 metrics_port: int | None = None, pool: str = "prefork", wait: bool = True) -> None:
    """``motion worker``: with the prefork pool ``concurrency`` processes; with the threads pool
    one process holding ``concurrency`` jobs in flight. ``wait``: until it is ready (else call
    ``wait_worker``)."""
    extra = ["--metrics-port", str(metrics_port)] if metrics_port else []
    procs.start(name, [sys.executable, "-m", "motion.cli", "worker", "--pool", pool, "--concurrency", str(concurrency),
                       "--loglevel", os.environ.get("MOTION_BENCH_WORKER_LOGLEVEL", "warning"), *extra],
                {**env, "MOTION_WORKER_ID": name})
    if wait:
        wait_worker(procs, name)


def wait_worker(procs: Procs, name: str = "worker") -> None:
    # At log level warning the banner is the last thing it prints; messages wait in Redis meanwhile.
    wait_for(lambda: "[queues]" in procs.log(name) or procs.procs[name].poll() is not None, 60, f"the {name}")
    procs.check()


def start_api(procs: Procs, env: dict, port: int, workers: int = 2, app: str = "api:create_app()",
              cwd: Path = REPO, name: str = "api") -> str:
    procs.start(name, [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}",
                       "--log-level", "warning", app], env, cwd=cwd)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: http_up(url + "/") or procs.procs[name].poll() is not None, 60, f"{name} on {url}")
    procs.check()
    return url


# -- CloudStack requests ------------------------------------------------------------------------

def signed_query(params: dict, apikey: str, secret: str, expires_in: float = 3600) -> str:
    """The query string a CloudStack client (``cs``) sends: signatureVersion 3, expires, HMAC-SHA1."""
    expires = (datetime.now(timezone.utc) + timedelta(seconds=expires_in)).strftime("%Y-%m-%dT%H:%M:%S%z")
    pairs = {**params, "response": "json", "apiKey": apikey, "signatureVersion": "3", "expires": expires}
    encode = lambda v: quote(str(v), safe="*")  # noqa: E731  (space as %20, like the cs client)
    text = "&".join(f"{k}={encode(v)}" for k, v in sorted(pairs.items())).lower()
    digest = hmac.new(secret.encode(), text.encode(), hashlib.sha1).digest()
    query = "&".join(f"{k}={encode(v)}" for k, v in pairs.items())
    return f"{query}&signature={quote(base64.b64encode(digest).decode(), safe='')}"


def create_admin_key(database_url: str) -> dict:
    from orchestrator import accounts
    from orchestrator.db import Database

    db = Database(database_url)
    try:
        with db.uow() as uow:
            key = accounts.create_key(uow.session, "admin", username=f"bench-{secrets.token_hex(3)}")
            uow.commit()
    finally:
        db.dispose()
    return key


# -- floors -------------------------------------------------------------------------------------

def floor_env(services: Services) -> dict:
    return {**os.environ, "FLOOR_DATABASE_URL": plain(services.database_url),
            "FLOOR_BROKER_URL": services.redis_url}


def celery_floor(services: Services, n: int, workers: int) -> dict:
    """Run ``celery_floor.py N WORKERS``; its figures as numbers."""
    script = floor_dir() / "celery_floor.py"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([sys.executable, str(script), str(n), str(workers)], env=floor_env(services),
                         cwd=script.parent, capture_output=True, text=True, timeout=900)
    line = next((l for l in out.stdout.splitlines() if l.startswith("floor ")), None)
    if out.returncode != 0 or line is None:
        raise SystemExit(f"bench: celery_floor.py failed ({out.returncode}):\n{out.stdout}\n{out.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the floor and its worker, once waited for
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {**{k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", line)}, "cpu_s": cpu}


def chain_floor(services: Services, n: int, workers: int, clients: int) -> dict:
    """Run ``bench/chain_floor.py N WORKERS CLIENTS`` (the shared floors chained with a bare agent);
    its figures as numbers (``end_to_end_per_s``, ``cpu_ms_<part>``)."""
    script = Path(__file__).with_name("chain_floor.py")
    out = subprocess.run([sys.executable, str(script), str(n), str(workers), str(clients)], env=floor_env(services),
                         cwd=script.parent, capture_output=True, text=True, timeout=900)
    line = next((l for l in out.stdout.splitlines() if l.startswith("chain-floor ")), None)
    if out.returncode != 0 or line is None:
        raise SystemExit(f"bench: chain_floor.py failed ({out.returncode}):\n{out.stdout}\n{out.stderr[-3000:]}")
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", line)}


# -- figures ------------------------------------------------------------------------------------

def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def median(values) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def ratio(value: float, floor: float) -> float:
    return value / floor if floor else float("nan")


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def stop_cleanly_on_sigterm() -> None:
    """SIGTERM ends the run like Ctrl-C: the ``finally`` blocks stop the processes and drop the database."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def header(title: str) -> None:
    stop_cleanly_on_sigterm()
    print(f"== {title} ==")
    print(f"machine: {os.cpu_count()} cpus, load average {load_average()}, "
          f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, python {sys.version.split()[0]}")
    sys.stdout.flush()
