"""Worker drain: how fast the worker alone empties a queue of instant migrations (before/after a change).

The pipeline benchmark mixes the API's submissions with the worker's runs. This one takes the API
out of the measured window: N ``migrateVolume`` requests are submitted while the worker is
stopped (the jobs wait in Redis), then the worker is started (``--modes``: W prefork processes, or
W processes with the threads pool holding J jobs each) and timed,
from when it reports ready, until the last job ended, with the CPU per job of the worker's
processes, the agent (zero-copy) and PostgreSQL. The worker's process ids are printed when it
starts, to attach a profiler, e.g. ``py-spy record --idle -o worker.svg --pid PID`` (wall time:
where a process waits) or ``--gil`` (CPU). No floor: compare two trees, alternated, at one load.

    python bench/worker_drain.py --n 800 --rounds 2 --modes prefork,threads:8
"""
from __future__ import annotations

import os
import sys

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402

from bench import _common as c  # noqa: E402
from bench import _stack  # noqa: E402
from bench import pipeline  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=800, help="migrations per round (default 800)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--modes", default=pipeline.DEFAULT_MODES,
                        help="worker modes, each run every round: 'prefork' or 'threads:J' (--workers "
                             f"processes, J jobs in flight each); comma-separated (default {pipeline.DEFAULT_MODES})")
    c.add_service_arguments(parser)
    args = parser.parse_args(argv)
    modes = pipeline.parse_modes(args.modes)
    c.header(f"worker drain: {args.n} queued migrations, {args.workers} worker processes, zero-copy agent")
    services = c.Services(args.database_url, args.redis_url)
    stack = None
    try:
        # every volume moves at most once per round and back in the next: enough volumes for all
        per_host = max(1, math.ceil(args.n / (16 * 4 * 2))) + 1
        _stack.load(services.database_url, _stack.inventory(16, 4, per_host, 1, "64KiB"))
        stack = _stack.Stack(services, keep=args.keep)
        _stack.create_files(stack.agent_root, _stack.moves(services))
        stack.start(workers=args.workers, zero_copy=True)
        warm, _, _ = stack.submit(_stack.moves(services, limit=20))  # imports, connections
        stack.wait_jobs(warm)
        for r, (pool, jobs) in [(r, m) for r in range(args.rounds) for m in modes]:
            mode = pool if pool == "prefork" else f"threads:{jobs}"
            stack.stop_workers()
            ids, t0, t1 = stack.submit(_stack.moves(services, limit=args.n))
            print(f"  round {r + 1}, {mode}: submitted {args.n} in {t1 - t0:.1f} s; load {c.load_average()}",
                  flush=True)
            stack.start_workers(args.workers, pool, jobs)
            leaders = [stack.procs.procs[name].pid for name in stack.worker_names]
            pids = {"worker": leaders, "agent": [stack.procs.procs["agent"].pid]}
            cpu0 = {k: _stack.cpu_seconds(v) for k, v in pids.items()}
            pg0 = {pid: _stack.cpu_seconds([pid]) for pid in _stack.postgres_pids(services)}
            start = time.perf_counter()
            print("    worker processes (supervisor, Celery, children): "
                  + "; ".join(str([leader, *_stack._children(leader)]) for leader in leaders), flush=True)
            done = stack.wait_jobs(ids)
            elapsed = done["end"] - start
            cpu = {k: 1000 * (_stack.cpu_seconds(v) - cpu0[k]) / args.n for k, v in pids.items()}
            cpu["postgres"] = 1000 * sum(_stack.cpu_seconds([pid]) - pg0.get(pid, 0.0)
                                         for pid in _stack.postgres_pids(services)) / args.n
            print(f"    drained {args.n / elapsed:.1f} jobs/s ({elapsed:.1f} s from the worker's start), "
                  f"failed {done['failed']}; cpu ms per job: "
                  + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()) + f"; load {c.load_average()}", flush=True)
        return 0
    finally:
        if stack is not None:
            stack.close()
        services.close()


if __name__ == "__main__":
    sys.exit(main())
