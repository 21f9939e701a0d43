"""Pipeline benchmark: N volume migrations end to end against the Celery + Redis + PostgreSQL floor.

Each migration goes the whole way: a signed ``migrateVolume`` to the API under gunicorn (2
workers), the intake transaction, the Celery message, W worker processes (``--workers``; by
default W ``motion worker --pool threads --concurrency 8``, each holding up to 8 jobs in flight;
``--modes prefork`` is ``motion worker --concurrency W``, W prefork processes of one job each)
claiming, admitting and dispatching the job, the host agent in zero-copy mode
(``--zero-copy``: the migration links the file, so it completes at once), the worker's poll, and
the finishing transaction. Figure: migrations/s from the first submission until the last job
ended. Floor: ``celery_floor.py N W`` (two guarded transactions per task, nothing else), run in
the same run, on the same database server and Redis, alternating with ours. Target: >= 0.7.

A second floor, ``bench/chain_floor.py N W C``, runs after each of ours: the shared floors chained
into the same path (``api_floor.py``'s endpoint under gunicorn -w 2 -> ``celery_floor.py``'s task
and worker -> one HTTP call to a bare agent that records nothing), loaded by the same C client
threads. ``celery_floor.py`` has no API and no agent, which the pipeline must run on the same cores;
the chain floor shows what the path itself leaves of the Celery floor, and ours is also reported
against it. ``--no-chain-floor`` skips it.

Each run also prints the CPU milliseconds per migration of every part: the worker processes, the
API, the agent, beat, the PostgreSQL backends of the run's database, the harness (this process:
the load generator, which sends URLs signed beforehand, and the wait for the jobs) and, when it
runs on this machine, the whole Redis server. On a machine with fewer cores than busy processes,
their sum is what sets the pace.

The inventory has many hosts (``--hosts``) so that the per-host limit of 2 never caps the
throughput; the hosts' limits are not changed. Runs alternate direction (pool 1 -> 2, then back).
The worker is run once per ``--poll-intervals`` value (MOTION_POLL_INTERVAL; default 0.2, the
production default, and 0.01), since an instant agent command still costs the worker one poll.

    python bench/pipeline.py                      # N=1000, 2 workers, 3 repeats
    python bench/pipeline.py --n 50 --repeat 1    # a quick look
    python bench/pipeline.py --n 1000 --repeat 1 --poll-intervals 0.2 --modes prefork,threads:8
"""
from __future__ import annotations

import os
import sys

# Run as a script, this file's directory comes first on sys.path: put the repository root there
# instead, so that the project and the bench helpers import as packages (bench._common, ...).
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402

from bench import _common as c  # noqa: E402
from bench import _stack  # noqa: E402

TARGET = 0.7
DEFAULT_MODES = "threads:8"


def parse_modes(text: str) -> list[tuple[str, int]]:
    """'prefork,threads:8' -> [("prefork", 1), ("threads", 8)]."""
    modes = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        pool, _, jobs = part.partition(":")
        if pool not in ("prefork", "threads") or (pool == "prefork" and jobs) or (jobs and not jobs.isdigit()):
            raise SystemExit(f"bench: bad mode {part!r}: 'prefork' or 'threads:J'")
        modes.append((pool, int(jobs) if jobs else (8 if pool == "threads" else 1)))
    return modes


def run_once(stack: _stack.Stack, n: int, clients: int) -> dict:
    chosen = _stack.moves(stack.services, limit=n)
    if len(chosen) < n:
        raise SystemExit(f"bench: only {len(chosen)} movable volumes for N={n}")
    pids: dict[str, list[int]] = {}  # every worker process counts as "worker"
    for name, p in stack.procs.procs.items():
        pids.setdefault("worker" if name in stack.worker_ports else name, []).append(p.pid)
    cpu0 = {name: _stack.cpu_seconds(p) for name, p in pids.items()}
    pg0 = {pid: _stack.cpu_seconds([pid]) for pid in _stack.postgres_backends(stack.services)}
    redis = _stack.redis_pids()
    redis0 = _stack.cpu_seconds(redis)
    runs0 = stack.task_runs()
    harness0 = time.process_time()  # this process: the load generator and the wait for the jobs
    ids, t0, t1 = stack.submit(chosen, clients)
    done = stack.wait_jobs(ids)
    time.sleep(0.5)  # let wake-ups still queued run (and be counted); the figures end at done["end"]
    runs = stack.task_runs()
    runs = {k: (v - runs0.get(k, 0.0)) / n for k, v in runs.items() if v - runs0.get(k, 0.0)}
    cpu = {name: _stack.cpu_seconds(p) - cpu0[name] for name, p in pids.items()}
    cpu["harness"] = time.process_time() - harness0
    if redis:  # a local server: its CPU while the run lasted, whoever the client
        cpu["redis"] = _stack.cpu_seconds(redis) - redis0
    # backends that ended meanwhile are not counted: a lower bound of the database's share
    # (split by the connections' application_name: the API's, the workers', beat's)
    for pid, name in _stack.postgres_backends(stack.services).items():
        share = _stack.cpu_seconds([pid]) - pg0.get(pid, 0.0)
        cpu["postgres"] = cpu.get("postgres", 0.0) + share
        key = "postgres:" + name.removeprefix("motion-")
        cpu[key] = cpu.get(key, 0.0) + share
    elapsed = done["end"] - t0
    return {"per_s": n / elapsed, "submit_per_s": n / (t1 - t0), "elapsed": elapsed,
            "failed": done["failed"], "cpu_ms": {k: 1000 * v / n for k, v in cpu.items()}, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="migrations per run (default 1000)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes, ours and the floor's (2)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (default 3); medians reported")
    parser.add_argument("--hosts", type=int, default=64, help="hosts in the inventory (default 64)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent API clients submitting (8)")
    parser.add_argument("--poll-intervals", default="0.2,0.01",
                        help="MOTION_POLL_INTERVAL values to run the worker with (default 0.2,0.01)")
    parser.add_argument("--modes", default=DEFAULT_MODES,
                        help="worker modes to run, in turn, each against its floor: 'prefork' (--workers "
                             "prefork processes, one job each) or 'threads:J' (--workers processes with the "
                             f"threads pool, J jobs in flight each); comma-separated (default {DEFAULT_MODES})")
    parser.add_argument("--no-chain-floor", dest="chain_floor", action="store_false",
                        help="do not run bench/chain_floor.py (the floors chained with an API and a bare agent)")
    c.add_service_arguments(parser)
    args = parser.parse_args(argv)
    intervals = [float(x) for x in args.poll_intervals.split(",") if x]
    c.header(f"pipeline: {args.n} migrations, {args.workers} worker processes, zero-copy agent")
    services = c.Services(args.database_url, args.redis_url)
    stack = None
    try:
        clusters = max(1, args.hosts // 4)
        per_host = max(1, math.ceil(args.n / (clusters * 4 * 2)))
        _stack.load(services.database_url, _stack.inventory(clusters, 4, per_host, 1, "64KiB"))
        stack = _stack.Stack(services, keep=args.keep)
        _stack.create_files(stack.agent_root, _stack.moves(services))
        stack.start(workers=None, zero_copy=True)
        results = {}
        for (pool, jobs), interval in [(m, i) for i in intervals for m in parse_modes(args.modes)]:
            mode = pool if pool == "prefork" else f"threads:{jobs}"
            stack.restart_worker(args.workers, pool, jobs, MOTION_POLL_INTERVAL=interval)
            run_once(stack, min(20, args.n), args.clients)  # warm-up: imports, connections
            ours, floors, chains = [], [], []
            for r in range(args.repeat):
                floor = c.celery_floor(services, args.n, args.workers)
                mine = run_once(stack, args.n, args.clients)
                chain = c.chain_floor(services, args.n, args.workers, args.clients) if args.chain_floor else None
                floors.append(floor["end_to_end_per_s"])
                chains.append(chain["end_to_end_per_s"] if chain else None)
                ours.append(mine)
                print(f"  {mode} poll={interval:<5} run {r + 1}: ours {mine['per_s']:7.1f}/s "
                      f"(submit {mine['submit_per_s']:.0f}/s, {mine['elapsed']:.1f} s, failed {mine['failed']}) "
                      f"floor {floor['end_to_end_per_s']:.0f}/s (enqueue {floor['enqueue_per_s']:.0f}/s) "
                      f"load {c.load_average()}", flush=True)
                print("    cpu ms per migration: " + ", ".join(
                    f"{k} {v:.1f}" for k, v in sorted(mine["cpu_ms"].items()))
                    + f"; the floor's processes {1000 * floor['cpu_s'] / args.n:.1f}", flush=True)
                if chain:
                    print(f"    chain floor {chain['end_to_end_per_s']:.0f}/s (ours {mine['per_s'] / chain['end_to_end_per_s']:.3f} "
                          f"of it; it {chain['end_to_end_per_s'] / floor['end_to_end_per_s']:.3f} of the floor); its cpu ms "
                          "per migration: " + ", ".join(f"{k[7:]} {v:.1f}" for k, v in sorted(chain.items())
                                                        if k.startswith("cpu_ms_")), flush=True)
                print("    task runs per migration: " + (", ".join(
                    f"{k} {v:.2f}" for k, v in sorted(mine["runs"].items())) or "unknown"), flush=True)
            results[(mode, interval)] = (c.median([m["per_s"] for m in ours]), c.median(floors),
                                         sum(m["failed"] for m in ours), c.median(chains))
        print(f"results (medians of {args.repeat}; N={args.n}, workers={args.workers}):")
        for (mode, interval), (mine, floor, failed, chain) in results.items():
            r = c.ratio(mine, floor)
            print(f"  {mode}, MOTION_POLL_INTERVAL={interval}: {mine:.1f} migrations/s; floor {floor:.0f}/s; "
                  f"ratio {r:.3f}; target >= {TARGET}: {c.verdict(r >= TARGET)}; failed jobs {failed}")
            if not math.isnan(chain):
                print(f"    chain floor {chain:.0f}/s ({c.ratio(chain, floor):.3f} of the floor); "
                      f"ours {c.ratio(mine, chain):.3f} of the chain floor")
        return 0
    finally:
        if stack is not None:
            stack.close()
        services.close()


if __name__ == "__main__":
    sys.exit(main())
