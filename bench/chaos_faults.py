"""The faults of a chaos run: planned from the seed, injected while the load runs.

Five kinds of event: a worker process killed with SIGKILL and started again 0.5-3 s later; an
agent process killed with SIGKILL and started again 0.5-3 s later; a destination pool taken
offline for 1-4 s (the agent's ``pools/offline`` hook, preferably a pool a copy is writing to
right now); the private Redis killed and started again on its port (every message in it lost);
the run's own PostgreSQL crashed and started again 0.5-3 s later (``--db-restarts``: every
connection lost, uncommitted work gone, the committed recovered from the WAL).
Each event fires once the load has submitted a random fraction (5-90 %) of its migrations,
after a random pause of up to 1.5 s and, for kills and outages, once a copy is under way (a
bounded wait), so they land mid-copy. Everything is drawn from the run's seed.

Before a kill the chaos notes what the kill strands, read-only from the database: the jobs whose
lease the killed worker held, the jobs dispatched on the killed agent's hosts, the jobs pending
when Redis or PostgreSQL went away. It also reads the killed agent's peak concurrency first, since a restart
resets it. The end checks count how many of those jobs ended: the recoveries.
"""
from __future__ import annotations

import random
import threading
import time

import requests

from bench.chaos_checks import Peaks, sql
from bench.chaos_load import Load
from bench.chaos_stack import Stack, wait_until

KINDS = ("worker-kill", "agent-kill", "pool-outage", "redis-restart", "db-restart")


def incarnation(lease_owner: str) -> str:
    """The worker incarnation (its MOTION_WORKER_ID) of a lease owner ``ID/PID-N`` (workers.app)."""
    return lease_owner.split("/", 1)[0]


def plan(rng: random.Random, total: int, counts: dict[str, int]) -> list[tuple[int, str]]:
    """(submitted-count threshold, kind) for every event, in firing order."""
    events = [(int(total * rng.uniform(0.05, 0.9)), kind) for kind in KINDS for _ in range(counts.get(kind, 0))]
    return sorted(events)


class Chaos(threading.Thread):
    """Injects the planned events in a thread of its own; ``done`` lists what it did."""

    def __init__(self, stack: Stack, load: Load, rng: random.Random, events: list[tuple[int, str]],
                 peaks: Peaks, started: float, timeout: float):
        super().__init__(name="chaos", daemon=True)
        self.stack, self.load, self.rng, self.events, self.peaks = stack, load, rng, events, peaks
        self.started, self.end = started, time.monotonic() + timeout
        self.done: list[dict] = []
        self.affected: dict[str, set[str]] = {kind: set() for kind in KINDS}
        self.error: str | None = None
        pools = load.api.listStoragePools(fetch_list=True)
        self.pool_paths = {p["id"]: p["path"] for p in pools}
        self.shared_pools = sorted(p["id"] for p in pools if p["scope"] != "HOST")

    def say(self, text: str) -> None:
        print(f"[chaos +{time.monotonic() - self.started:6.1f}s] {text}", flush=True)

    def run(self) -> None:
        try:
            for threshold, kind in self.events:
                while self.load.submitted() < threshold and time.monotonic() < self.end:
                    time.sleep(0.2)
                if time.monotonic() >= self.end:
                    self.say(f"time is up; {kind} and later events not injected")
                    return
                time.sleep(self.rng.uniform(0, 1.5))
                if kind not in ("redis-restart", "db-restart"):
                    self._wait_for_a_copy()
                getattr(self, kind.replace("-", "_"))()
        except Exception as exc:  # the run goes on to its checks; the report says what broke
            self.error = f"{type(exc).__name__}: {exc}"
            self.say(f"chaos stopped by an error: {self.error}")

    def _wait_for_a_copy(self, timeout: float = 20.0) -> None:
        """Until the database shows a copy under way (its worker's heartbeat wrote progress)."""
        end = min(self.end, time.monotonic() + timeout)
        while time.monotonic() < end and not sql(
                self.stack.database_url, "SELECT count(*) FROM async_jobs WHERE status = 0 "
                "AND phase = 'dispatched' AND bytes_done > 0")[0][0]:
            time.sleep(0.2)

    def _record(self, kind: str, detail: str, jobs: list[str], what: str = "stranded") -> None:
        self.affected[kind].update(jobs)
        self.done.append({"kind": kind, "at": round(time.monotonic() - self.started, 1), "detail": detail,
                          "jobs": len(jobs)})
        self.say(f"{kind}: {detail}; jobs {what}: {len(jobs)}")

    # -- the events ------------------------------------------------------------------------
    def _busy(self, query: str) -> set[str]:
        return {r[0] for r in sql(self.stack.database_url, query)}

    def worker_kill(self) -> None:
        """Kill a worker holding a dispatched job if there is one (so it lands mid-copy)."""
        holders = self._busy("SELECT DISTINCT lease_owner FROM async_jobs WHERE status = 0 AND phase <> 'queued' "
                             "AND lease_owner IS NOT NULL")
        names = [n for n in self.stack.worker_names if self.stack.worker_id(n) in {incarnation(h) for h in holders}]
        name = self.rng.choice(names or self.stack.worker_names)
        wid = self.stack.worker_id(name)
        held = [r[0] for r in sql(self.stack.database_url, "SELECT uuid FROM async_jobs WHERE status = 0 "
                                  "AND (lease_owner = %s OR lease_owner LIKE %s)", wid, wid + "/%")]
        self.stack.procs.kill(name)
        self._record("worker-kill", f"SIGKILL {name} ({wid}, pid group) holding {len(held)} lease(s)", held)
        time.sleep(self.rng.uniform(0.5, 3.0))
        self.stack.start_worker(name)
        self.say(f"started {self.stack.worker_id(name)}")

    def agent_kill(self) -> None:
        """Kill an agent with a job dispatched on one of its hosts if there is one."""
        busy = self._busy("SELECT DISTINCT h.name FROM async_jobs j JOIN hosts h ON h.id = j.host_id "
                          "WHERE j.status = 0 AND j.phase <> 'queued'")
        names = [a for a, hosts in sorted(self.stack.agent_hosts.items()) if busy.intersection(hosts)]
        name = self.rng.choice(names or sorted(self.stack.agent_hosts))
        hosts = self.stack.agent_hosts[name]
        self.peaks.observe(self.stack, hosts)  # the restart resets the agent's peak
        held = [r[0] for r in sql(self.stack.database_url, "SELECT DISTINCT j.uuid FROM async_jobs j JOIN hosts h "
                                  "ON h.id = j.host_id OR h.id = j.dest_host_id WHERE j.status = 0 "
                                  "AND j.phase <> 'queued' AND h.name = ANY(%s)", hosts)]
        self.stack.procs.kill(name)
        self._record("agent-kill", f"SIGKILL {name} (hosts {', '.join(hosts)}) with {len(held)} job(s) "
                                   f"dispatched on them", held)
        time.sleep(self.rng.uniform(0.5, 3.0))
        self.stack.start_agent(name)
        self.say(f"started {name}")

    def pool_outage(self) -> None:
        writing = [j.target for j in self.load.copying() if j.kind == "volume"]
        pool = self.rng.choice(writing or self.shared_pools)
        path = self.pool_paths[pool]
        held = [r[0] for r in sql(self.stack.database_url, "SELECT DISTINCT j.uuid FROM async_jobs j JOIN "
                                  "job_resources r ON r.job_id = j.id JOIN storage_pools p ON p.id IN "
                                  "(r.src_pool_id, r.dest_pool_id) WHERE j.status = 0 AND j.phase <> 'queued' "
                                  "AND p.uuid = %s", pool)]
        self.set_pool(path, online=False)
        self._record("pool-outage", f"pool {path} offline ({'a copy was writing to it' if writing else 'idle'}) "
                                    f"with {len(held)} job(s) dispatched using it", held, "hit")
        time.sleep(self.rng.uniform(1.0, 4.0))
        self.set_pool(path, online=True)
        self.say(f"pool {path} online")

    def redis_restart(self) -> None:
        held = [r[0] for r in sql(self.stack.database_url, "SELECT uuid FROM async_jobs WHERE status = 0")]
        self.stack.procs.kill("redis")
        self._record("redis-restart", f"SIGKILL redis with {len(held)} job(s) pending", held)
        time.sleep(self.rng.uniform(0.5, 2.0))
        self.stack.start_redis()
        self.say("started redis (empty)")

    def db_restart(self) -> None:
        """Crash the run's own PostgreSQL (``pg_ctl stop -m immediate``) and start it again."""
        held = [r[0] for r in sql(self.stack.database_url, "SELECT uuid FROM async_jobs WHERE status = 0")]
        self.stack.postgres.crash()
        self._record("db-restart", f"PostgreSQL crashed with {len(held)} job(s) pending", held)
        time.sleep(self.rng.uniform(0.5, 3.0))
        self.stack.postgres.start()
        self.say("started PostgreSQL (crash recovery)")

    def set_pool(self, path: str, online: bool, tries: int = 20) -> None:
        """Ask any running agent to take the pool offline or online (the marker is shared)."""
        action = "online" if online else "offline"
        for attempt in range(tries):
            for agent, hosts in sorted(self.stack.agent_hosts.items()):
                if not self.stack.procs.alive(agent):
                    continue
                try:
                    requests.post(f"{self.stack.agent_url(agent)}/hosts/{hosts[0]}/pools/{action}",
                                  json={"path": path}, timeout=10).raise_for_status()
                    return
                except requests.RequestException:
                    continue
            time.sleep(0.5)
        raise RuntimeError(f"no agent could take pool {path} {action}")


class Watch(threading.Thread):
    """Once a second while the run lasts: a supervisor and an observer.

    It starts again any process that ended by itself, as systemd would (each crash is
    reported); notes which worker incarnations hold each dispatched job (a job seen held by two
    was resumed by another worker after its holder died); and reads the agents' peaks every few
    seconds (an agent restart resets them).
    """

    def __init__(self, stack: Stack, peaks: Peaks, say):
        super().__init__(name="watch", daemon=True)
        self.stack, self.peaks, self.say = stack, peaks, say
        self.holders: dict[str, set[str]] = {}
        self.stop = threading.Event()
        self.errors = 0

    def run(self) -> None:
        tick = 0
        while not self.stop.wait(1.0):
            tick += 1
            try:
                for name in self.stack.procs.check():
                    self.say(f"{name} ended by itself: {self.stack.procs.crashes[-1][2]}; starting it again")
                    self.stack.restart(name)
                for uuid, owner in sql(self.stack.database_url, "SELECT uuid, lease_owner FROM async_jobs WHERE "
                                       "status = 0 AND phase <> 'queued' AND lease_owner IS NOT NULL"):
                    self.holders.setdefault(uuid, set()).add(incarnation(owner))
                if tick % 3 == 0:
                    self.peaks.observe(self.stack, [h for hosts in self.stack.agent_hosts.values() for h in hosts])
            except Exception as exc:  # a look that failed is retried next second
                self.errors += 1
                self.say(f"watch: {type(exc).__name__}: {exc}")

    def resumed(self) -> int:
        """Jobs seen dispatched under two or more worker incarnations."""
        return sum(len(owners) > 1 for owners in self.holders.values())


def bring_everything_back(stack: Stack, chaos: Chaos) -> list[str]:
    """After the chaos: every pool online, every process running. Returns what was restarted."""
    restarted = stack.ensure_running()
    for agent in stack.agent_hosts:
        wait_until(lambda: stack.procs.alive(agent), 30, f"agent {agent}")
    for path in sorted(set(chaos.pool_paths.values())):
        chaos.set_pool(path, online=True)
    return restarted
