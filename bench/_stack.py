"""The production stack for the benchmarks: a generated inventory, its volume files, and the
processes (host agent, Celery worker, scheduler, gunicorn API) on the run's database and Redis db.

The inventory comes from ``orchestrator.inventory.generate`` with every volume made shared and
untagged on its cluster's first pool, so that every volume can move to the cluster's second pool
(and back): a benchmark picks as many moves as it needs with ``moves()``. Many hosts are used so
that the per-host limit (2) never caps a pipeline's throughput; the hosts' limit is left as it is.
"""
from __future__ import annotations

import http.client
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests

from bench import _common as c


@dataclass(frozen=True)
class Move:
    volume: str  # uuid
    dest: str  # pool uuid
    host: str
    size: int
    path: str
    src_dir: str  # pool path


def inventory(clusters: int, hosts_per_cluster: int, vms_per_host: int, data_volumes: int,
              size: str | list[str]) -> dict:
    """A generated inventory whose volumes all sit on their cluster's pool 1 (``size`` may be a list,
    used in turn, for mixed sizes)."""
    from orchestrator import inventory as inv

    data = inv.generate(clusters_per_pod=clusters, hosts_per_cluster=hosts_per_cluster,
                        vms_per_host=vms_per_host, data_volumes_per_vm=data_volumes, volume_size="1MiB")
    sizes = [size] if isinstance(size, str) else list(size)
    n = 0
    for vm in data["vms"]:
        vm["service_offering"] = "gen-shared"
        cluster = vm["host"].rsplit("-host-", 1)[0]
        for volume in vm["volumes"]:
            volume.update(pool=f"{cluster}-pool-1", disk_offering="gen-shared", size=sizes[n % len(sizes)])
            n += 1
    return data


def load(database_url: str, data: dict) -> None:
    from orchestrator import inventory as inv
    from orchestrator.db import Database

    db = Database(database_url)
    try:
        with db.uow() as uow:
            inv.load(uow.session, data)
            uow.commit()
    finally:
        db.dispose()


def hosts(services: c.Services) -> list[str]:
    return [r[0] for r in services.sql("select name from hosts order by id")]


def moves(services: c.Services, limit: int | None = None, pool: str | None = None) -> list[Move]:
    """Ready volumes and the other shared pool of their cluster, taking the hosts in turn (so that
    consecutive submissions go to different hosts, as many clients' would)."""
    rows = services.sql(
        """select v.uuid, d.uuid, h.name, v.size, v.path, s.path
             from volumes v join storage_pools s on s.id = v.pool_id
             join virtual_machines m on m.id = v.vm_id join hosts h on h.id = m.host_id
             join storage_pools d on d.cluster_id = s.cluster_id and d.id <> s.id and d.host_id is null
            where v.state = 'Ready' and m.state = 'Running' and s.host_id is null
              and (%s::text is null or s.name = %s)
            order by row_number() over (partition by h.id order by v.id), h.id""", (pool, pool))
    out = [Move(*r) for r in rows]
    return out[:limit] if limit else out


def create_files(root: Path, chosen: list[Move]) -> None:
    """The volume files where the agent expects them, sparse (zero-copy moves never read them)."""
    for move in chosen:
        directory = root / move.src_dir.lstrip("/")
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / move.path, "wb") as fh:
            fh.truncate(move.size)


class Stack:
    """The processes of one benchmark run; ``close()`` stops them and drops the database."""

    def __init__(self, services: c.Services, keep: bool = False):
        self.services = services
        self.dir = Path(tempfile.mkdtemp(prefix="motion-bench-"))
        self.keep = keep
        self.procs = c.Procs(self.dir)
        self.agent_root = self.dir / "agent"
        self.agent_port = c.free_port()
        self.agent_url = f"http://127.0.0.1:{self.agent_port}"
        self.env = c.motion_env(services, self.agent_port)
        self.api_url = None
        self.key = None
        self.worker_metrics_port = c.free_port()
        self.worker_ports: dict[str, int] = {}  # worker process name -> its metrics port

    @property
    def worker_names(self) -> list[str]:
        return list(self.worker_ports)

    def start(self, *, workers: int | None = 2, api: bool = True, beat: bool = True, agent: bool = True,
              zero_copy: bool = False, bandwidth: float | None = None, **env: str) -> "Stack":
        self.env.update({k: str(v) for k, v in env.items()})
        self.key = self.key or c.create_admin_key(self.services.database_url)
        if agent:
            c.start_agent(self.procs, self.env, hosts(self.services), self.agent_root, self.agent_port,
                          zero_copy=zero_copy, bandwidth=bandwidth)
        if workers:
            self.start_workers(workers)
        if beat:
            self.procs.start("beat", [c.sys.executable, "-m", "motion.cli", "beat"], self.env)
        if api:
            self.api_url = c.start_api(self.procs, self.env, c.free_port(), workers=2)
        return self

    def start_workers(self, processes: int, pool: str = "prefork", jobs_per_process: int = 1, **env: str) -> None:
        """``processes`` worker processes: one ``motion worker --pool prefork --concurrency
        processes`` (its children run one job each), or ``processes`` times ``motion worker
        --pool threads --concurrency jobs_per_process`` (named worker, worker2, ...)."""
        environment = {**self.env, **{k: str(v) for k, v in env.items()}}
        if pool == "prefork":
            self.worker_ports = {"worker": self.worker_metrics_port}
            c.start_worker(self.procs, environment, processes, metrics_port=self.worker_metrics_port)
            return
        self.worker_ports = {f"worker{i + 1 if i else ''}": self.worker_metrics_port if i == 0 else c.free_port()
                             for i in range(processes)}
        for name, port in self.worker_ports.items():  # all started, then all waited for
            c.start_worker(self.procs, environment, jobs_per_process, name=name, metrics_port=port, pool="threads",
                           wait=False)
        for name in self.worker_names:
            c.wait_worker(self.procs, name)

    def stop_workers(self) -> None:
        for name in self.worker_names:
            self.procs.stop(name)

    def restart_worker(self, concurrency: int, pool: str = "prefork", jobs_per_process: int = 1, **env: str) -> None:
        self.stop_workers()
        self.start_workers(concurrency, pool, jobs_per_process, **env)

    def task_runs(self) -> dict[str, float]:
        """``motion.run_job`` runs so far by outcome (succeeded, queued, skipped, ...), from the
        workers' metrics: runs per job is a deterministic measure of wasted wake-ups."""
        runs = {}
        for port in self.worker_ports.values():
            for outcome, value in self._task_runs(port).items():
                runs[outcome] = runs.get(outcome, 0.0) + value
        return runs

    def _task_runs(self, port: int) -> dict[str, float]:
        try:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        except requests.RequestException:
            return {}
        runs = {}
        for line in text.splitlines():
            if line.startswith("motion_worker_job_runs_total{"):
                label, value = line.rsplit(" ", 1)
                outcome = label.split('outcome="', 1)[1].split('"', 1)[0]
                runs[outcome] = runs.get(outcome, 0.0) + float(value)
        return runs

    def url(self, command: str, **params) -> str:
        return f"{self.api_url}/client/api?" + c.signed_query({"command": command, **params},
                                                              self.key["apikey"], self.key["secretkey"])

    def submit(self, chosen: list[Move], clients: int = 8) -> tuple[list[str], float, float]:
        """Submit ``migrateVolume`` for every move from ``clients`` threads; (job ids, start, end).

        The URLs are signed beforehand and sent with ``http.client`` (gunicorn's sync workers
        close every connection): the load generator shares the machine's cores with what it
        measures, so it does as little as a client can."""
        host_port = self.api_url.split("://", 1)[1].rstrip("/")
        paths = ["/client/api?" + c.signed_query({"command": "migrateVolume", "volumeid": m.volume,
                                                  "storageid": m.dest, "livemigrate": "true"},
                                                 self.key["apikey"], self.key["secretkey"]) for m in chosen]

        def one(path: str) -> str:
            conn = http.client.HTTPConnection(host_port, timeout=60)
            try:
                conn.request("GET", path)
                answer = conn.getresponse()
                body = json.loads(answer.read())
            finally:
                conn.close()
            if answer.status != 200:
                raise SystemExit(f"bench: migrateVolume answered {answer.status}: {body}")
            return body["migratevolumeresponse"]["jobid"]

        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            ids = list(pool.map(one, paths))
        return ids, t0, time.perf_counter()

    def wait_jobs(self, job_ids: list[str], timeout: float = 900) -> dict:
        """Wait until every job has ended; counts of succeeded/failed and when the last ended
        (on ``time.perf_counter``'s scale, from the jobs' ``completed_at``: the wait itself
        looks only every 0.1 s, to take little of the machine)."""
        wanted = len(job_ids)
        first = self.services.sql("select min(id) from async_jobs where uuid = any(%s)", (job_ids,))[0][0]

        def done():
            self.procs.check()
            [(ended,)] = self.services.sql("select count(*) from async_jobs where id >= %s and status <> 0",
                                           (first,))
            return ended >= wanted or None

        c.wait_for(done, timeout, f"{wanted} jobs to end", interval=0.1)
        wall, perf = time.time(), time.perf_counter()
        rows = self.services.sql("select status, count(*), extract(epoch from max(completed_at)) from async_jobs "
                                 "where uuid = any(%s) and status <> 0 group by status", (job_ids,))
        if sum(n for _, n, _ in rows) < wanted:
            raise SystemExit(f"bench: jobs other than the {wanted} submitted ended meanwhile")
        counts = {status: n for status, n, _ in rows}
        last = max(float(end) for _, _, end in rows)  # completed_at is UTC without a zone: epoch seconds
        return {"succeeded": counts.get(1, 0), "failed": counts.get(2, 0), "end": perf - (wall - last)}

    def close(self) -> None:
        self.procs.stop()
        if not self.keep:
            import shutil

            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print(f"logs kept in {self.dir}")


def postgres_pids(services: c.Services) -> list[int]:
    """The PostgreSQL backends serving the run's database now (their CPU is the database's share)."""
    return [r[0] for r in services.sql("select pid from pg_stat_activity where datname = current_database() "
                                       "and pid <> pg_backend_pid()")]


def postgres_backends(services: c.Services) -> dict[int, str]:
    """The run's backends now and their ``application_name`` (``motion-api``, ``motion-worker``, ...)."""
    return {pid: name or "other" for pid, name in services.sql(
        "select pid, application_name from pg_stat_activity where datname = current_database() "
        "and pid <> pg_backend_pid()")}


def redis_pids() -> list[int]:
    """The local ``redis-server`` processes (the whole server: every client's share)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "redis-server":
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of processes and their children so far (for per-job costs)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        for p in [pid, *_children(pid)]:
            try:
                fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
            except (OSError, IndexError, ValueError):
                pass
    return total


def _children(pid: int) -> list[int]:
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
            for child in map(int, text):
                out += [child, *_children(child)]
    except OSError:
        pass
    return out
