"""API benchmark: signed ``migrateVolume`` submissions and ``queryAsyncJobResult`` polls under
gunicorn (2 workers), against ``api_floor.py`` under the same gunicorn, from a load generator in
another process with 32 concurrent clients.

Submissions: each request names a different Ready volume and its cluster's other pool; the API
authenticates it, validates it, moves the volume to Migrating, records the job and the event and
publishes the job id to Redis (no worker consumes it here). Floor: ``GET /client/api?command=
migrateVolume`` (one INSERT and one publish). Polls: ``queryAsyncJobResult`` of the pending jobs
the submissions made; floor: ``GET /hello`` (JSON, no database). Figures: requests/s, p50 and p99
latency. Targets: submissions >= 0.5 of the floor, polls >= 0.5 of the floor's rate.

The load generator is wrk with a Lua script when installed (``apt-get install wrk``), otherwise a
Python client (``--client python``); the requests are signed beforehand, as many as needed, so
the generator does no crypto. Between repeats the volumes are put back to Ready and the jobs
ended by SQL, so every repeat submits fresh migrations.

    python bench/api.py                     # 10 s per figure, 3 repeats
    python bench/api.py --duration 2 --repeat 1 --volumes 300
"""
from __future__ import annotations

import os
import sys

# Run as a script, this file's directory comes first on sys.path: put the repository root there
# instead, so that the project and the bench helpers import as packages (bench._common, ...).
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402

from bench import _common as c  # noqa: E402
from bench import _load, _stack  # noqa: E402

TARGET = 0.5


def reset(services: c.Services) -> None:
    """Every volume Ready again, every pending job ended, both queues emptied (nothing consumes them);
    then what autovacuum would do after such mass updates (see ``analyze``)."""
    services.sql("update volumes set state = 'Ready' where state = 'Migrating'")
    services.sql("update async_jobs set status = 2, phase = 'done', result_code = 530 where status = 0")
    services.redis.delete("motion", "floor_api")
    services.sql("vacuum analyze volumes, async_jobs")


def analyze(services: c.Services) -> None:
    """What PostgreSQL's autovacuum does once the submissions' inserts and stamps cross its
    thresholds (a few thousand rows here, so within its next round, a minute at most): statistics
    of the new jobs, and their pages marked all-visible. On a server that runs with autovacuum off
    (as the shared one of docs/benchmarks.md does), the planner would otherwise plan every poll
    for the empty table of the run's start, and a queued job's position would read the table's
    page of every job ahead of it (docs/benchmarks.md, section 2, says what that costs)."""
    services.sql("vacuum analyze async_jobs")


def measured(services: c.Services, api_pids: list[int], load) -> dict:
    """``load()``'s figures, plus the CPU milliseconds per request it cost: the API's processes
    (gunicorn's master and workers), the PostgreSQL backends of the run's database, the load
    generator (this process's children) and the whole local Redis server."""
    pg0 = {pid: _stack.cpu_seconds([pid]) for pid in _stack.postgres_pids(services)}
    api0, redis = _stack.cpu_seconds(api_pids), _stack.redis_pids()
    redis0, kids0 = _stack.cpu_seconds(redis), resource.getrusage(resource.RUSAGE_CHILDREN)
    f = load()
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = {"api": _stack.cpu_seconds(api_pids) - api0,
           "postgres": sum(_stack.cpu_seconds([pid]) - pg0.get(pid, 0.0) for pid in _stack.postgres_pids(services)),
           "load": kids.ru_utime + kids.ru_stime - kids0.ru_utime - kids0.ru_stime,
           "redis": _stack.cpu_seconds(redis) - redis0}
    n = max(1, f["requests"])
    return {**f, **{f"cpu_{k}": 1000 * v / n for k, v in cpu.items()}}


CPU_PARTS = ("api", "postgres", "load", "redis")


def line(name: str, f: dict) -> str:
    cpu = " + ".join(f"{k} {f['cpu_' + k]:.2f}" for k in CPU_PARTS if "cpu_" + k in f)
    return (f"{name} {f['rps']:7.1f} req/s  p50 {f['p50_ms']:7.1f} ms  p99 {f['p99_ms']:7.1f} ms  "
            f"errors {f['errors']}" + (f"  cpu ms/req: {cpu}" if cpu else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per measurement (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3); medians reported")
    parser.add_argument("--volumes", type=int, default=12000,
                        help="volumes to submit per round; more than the API can take in --duration (12000)")
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto",
                        help="load generator (default: wrk if installed, else python)")
    c.add_service_arguments(parser)
    args = parser.parse_args(argv)
    c.header(f"api: gunicorn -w 2, {args.connections} concurrent clients, {args.duration:.0f} s per figure")
    services = c.Services(args.database_url, args.redis_url)
    stack = None
    try:
        per_host = math.ceil(args.volumes / (64 * 2))
        _stack.load(services.database_url, _stack.inventory(16, 4, per_host, 1, "64KiB"))
        stack = _stack.Stack(services, keep=args.keep)
        stack.start(workers=None, beat=False, agent=False)
        floor_url = c.start_api(stack.procs, c.floor_env(services), c.free_port(), workers=2,
                                app="api_floor:app", cwd=c.floor_dir(), name="api_floor")
        api_url = stack.api_url
        api_pids = {floor_url: [stack.procs.procs["api_floor"].pid], api_url: [stack.procs.procs["api"].pid]}
        load = lambda url, paths: measured(services, api_pids[url], lambda: _load.run(  # noqa: E731
            url, paths, args.duration, args.connections, args.client))
        floor_submit, floor_poll = ["/client/api?command=migrateVolume"], ["/hello"]
        rows = {k: [] for k in ("submit", "submit_floor", "poll", "poll_floor")}
        for r in range(args.repeat):
            reset(services)
            submits = [stack.url("migrateVolume", volumeid=m.volume, storageid=m.dest, livemigrate="true")
                       for m in _stack.moves(services)]
            submits = [u[len(api_url):] for u in submits]
            if r == 0:  # warm-up: the workers' imports, pools and caches (polls change nothing)
                warm = min(2.0, args.duration)
                _load.run(floor_url, floor_poll, warm, args.connections, args.client)
                _load.run(api_url, [stack.url("listZones")[len(api_url):]], warm, args.connections, args.client)
            rows["submit_floor"].append(load(floor_url, floor_submit))
            rows["submit"].append(load(api_url, submits))
            analyze(services)
            jobs = [j for (j,) in services.sql("select uuid from async_jobs where status = 0 order by id desc "
                                               "limit 1000")]
            polls = [stack.url("queryAsyncJobResult", jobid=j)[len(api_url):] for j in jobs]
            rows["poll_floor"].append(load(floor_url, floor_poll))
            rows["poll"].append(load(api_url, polls))
            print(f"  round {r + 1} ({rows['submit'][-1]['client']}; load {c.load_average()}):")
            for key in rows:
                print("    " + line(f"{key:<13}", rows[key][-1]), flush=True)
            if rows["submit"][-1]["errors"]:
                print(f"    note: {rows['submit'][-1]['errors']} submissions failed; if the API took more than "
                      f"{len(submits)} in {args.duration:.0f} s, raise --volumes", flush=True)
        figures = ("rps", "p50_ms", "p99_ms", "errors", *(f"cpu_{k}" for k in CPU_PARTS))
        med = {k: {f: c.median([x[f] for x in v]) for f in figures} for k, v in rows.items()}
        print(f"results (medians of {args.repeat}; {args.connections} clients, gunicorn -w 2):")
        for kind in ("submit", "poll"):
            ours, floor = med[kind], med[f"{kind}_floor"]
            r = c.ratio(ours["rps"], floor["rps"])
            print(f"  {kind:<6}: {line('ours', ours)}")
            print(f"          {line('floor', floor)}")
            print(f"          ratio {r:.3f}; target >= {TARGET}: {c.verdict(r >= TARGET)}")
        return 0
    finally:
        if stack is not None:
            stack.close()
        services.close()


if __name__ == "__main__":
    sys.exit(main())
