"""Drain benchmark: move K volumes of mixed sizes off one pool through the throttled simulated
agent (a fixed MiB/s per copy) with the per-host limit of 2, against the ideal lower bound.

The bound: for each host, the larger of its largest copy time and its total copy time divided by
its slots (2); the bound is the largest over the hosts (copy time = size / bandwidth). Figure: the
makespan, from the first job's creation to the last job's completion (database timestamps), and
its ratio to the bound. Target: <= 1.1, with zero timeouts caused by queueing: ``wait`` is set so
that the agent deadline (``wait`` x 2) is shorter than the makespan but longer than any one copy,
so a job whose deadline counted its time in the queue would time out.

The volumes are real files (random bytes, created by the agent, as ``motion inventory provision``
does) on pool 1 of one cluster, attached to VMs spread over ``--hosts`` hosts; every one moves to
pool 2. They are submitted through the API all at once, largest first (what an operator's drain
script would do; per host the orchestrator runs them in submission order). The worker has two
processes per host (``--concurrency``), so that every slot can be busy: a worker process watches
one job at a time.

    python bench/drain.py                                   # 16 volumes, 2 hosts, 8 MiB/s
    python bench/drain.py --volumes 4 --sizes 2,4 --bandwidth 8 --repeat 1
"""
from __future__ import annotations

import os
import sys

# Run as a script, this file's directory comes first on sys.path: put the repository root there
# instead, so that the project and the bench helpers import as packages (bench._common, ...).
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import math  # noqa: E402

import requests  # noqa: E402

from bench import _common as c  # noqa: E402
from bench import _stack  # noqa: E402

TARGET = 1.1
MIB = 1024 * 1024


def lower_bound(moves: list[_stack.Move], bandwidth: float, slots: int = 2) -> float:
    per_host: dict[str, list[float]] = {}
    for m in moves:
        per_host.setdefault(m.host, []).append(m.size / (bandwidth * MIB))
    return max(max(max(t), sum(t) / slots) for t in per_host.values())


def provision(stack: _stack.Stack) -> None:
    from orchestrator import config
    from orchestrator.db import Database
    from orchestrator.provision import provision_volumes
    from workers.agent_client import AgentClient

    db = Database(stack.services.database_url)
    try:
        provision_volumes(db, AgentClient(60), config.from_env(stack.env))
    finally:
        db.dispose()


def run_once(stack: _stack.Stack, bandwidth: float, clients: int, timeline: bool = False) -> dict:
    chosen = sorted(_stack.moves(stack.services), key=lambda m: -m.size)
    ids, _, _ = stack.submit(chosen, clients)
    done = stack.wait_jobs(ids)
    [(makespan,)] = stack.services.sql(
        "select extract(epoch from max(completed_at) - min(created)) from async_jobs where uuid = any(%s)", (ids,))
    timeouts = stack.services.sql("select count(*) from async_jobs where uuid = any(%s) and status = 2 and "
                                  "result like '%%did not finish within%%'", (ids,))[0][0]
    peaks = [requests.get(f"{stack.agent_url}/hosts/{h}", timeout=10).json()["peakStorageMigrations"]
             for h in sorted({m.host for m in chosen})]
    bound = lower_bound(chosen, bandwidth)
    if timeline:
        rows = stack.services.sql(
            """select h.name, j.bytes_total, extract(epoch from j.dispatched_at - t.t0),
                      extract(epoch from j.completed_at - t.t0)
                 from async_jobs j join hosts h on h.id = j.host_id,
                      (select min(created) as t0 from async_jobs where uuid = any(%s)) t
                where j.uuid = any(%s) order by h.name, j.dispatched_at""", (ids, ids))
        for host, size, start, end in rows:
            print(f"    {host} {size // MIB:5d} MiB  dispatched {float(start):6.2f} s  ended {float(end):6.2f} s  "
                  f"(copy {size / (bandwidth * MIB):.2f} s)")
    return {"makespan": float(makespan), "bound": bound, "ratio": float(makespan) / bound,
            "failed": done["failed"], "timeouts": timeouts, "peak": max(peaks), "n": len(chosen)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=16, help="volumes to move (default 16)")
    parser.add_argument("--hosts", type=int, default=2, help="hosts their VMs run on (default 2)")
    parser.add_argument("--sizes", default="8,16,24,32", help="MiB, used in turn (default 8,16,24,32)")
    parser.add_argument("--bandwidth", type=float, default=8, help="MiB/s per copy (default 8)")
    parser.add_argument("--concurrency", type=int, help="worker processes (default 2 per host)")
    parser.add_argument("--repeat", type=int, default=3, help="runs (default 3); runs alternate direction")
    parser.add_argument("--warm-up", type=int, default=1, help="drains run first and not counted (default 1)")
    parser.add_argument("--timeline", action="store_true", help="print when each job was dispatched and ended")
    parser.add_argument("--poll-interval", type=float, help="MOTION_POLL_INTERVAL (default: the default, 0.2)")
    c.add_service_arguments(parser)
    args = parser.parse_args(argv)
    sizes = [f"{int(s)}MiB" for s in args.sizes.split(",")]
    concurrency = args.concurrency or 2 * args.hosts
    c.header(f"drain: {args.volumes} volumes ({args.sizes} MiB) off one pool, {args.hosts} hosts, "
             f"{args.bandwidth:g} MiB/s per copy, limit 2 per host, {concurrency} worker processes")
    services = c.Services(args.database_url, args.redis_url)
    stack = None
    try:
        vms = math.ceil(args.volumes / (2 * args.hosts))  # two volumes per VM, the same VMs on every host
        if vms * 2 * args.hosts != args.volumes:
            print(f"  note: {vms * 2 * args.hosts} volumes (two per VM, {vms} VM(s) per host)")
        _stack.load(services.database_url, _stack.inventory(1, args.hosts, vms, 1, sizes))
        stack = _stack.Stack(services, keep=args.keep)
        env = {"MOTION_POLL_INTERVAL": args.poll_interval} if args.poll_interval else {}
        stack.start(workers=concurrency, bandwidth=args.bandwidth, **env)
        provision(stack)
        longest = max(m.size for m in _stack.moves(services)) / (args.bandwidth * MIB)
        bound = lower_bound(_stack.moves(services), args.bandwidth)
        wait = max(1, math.ceil(0.75 * longest + 1))
        answer = requests.get(stack.url("updateConfiguration", name="wait", value=str(wait)), timeout=30)
        answer.raise_for_status()
        print(f"  longest copy {longest:.2f} s, bound {bound:.2f} s, wait {wait} s (deadline {2 * wait} s)"
              + ("" if 2 * wait < bound else "; note: the deadline is not shorter than the bound"), flush=True)
        for _ in range(args.warm_up):  # the worker processes' first jobs pay their start-up (imports, pools)
            run = run_once(stack, args.bandwidth, clients=4)
            print(f"  warm-up: makespan {run['makespan']:.2f} s (not counted)", flush=True)
        runs = []
        for r in range(args.repeat):
            run = run_once(stack, args.bandwidth, clients=4, timeline=args.timeline)
            runs.append(run)
            print(f"  run {r + 1}: makespan {run['makespan']:.2f} s, bound {run['bound']:.2f} s, "
                  f"ratio {run['ratio']:.3f}, failed {run['failed']}, timeouts {run['timeouts']}, "
                  f"peak per host {run['peak']}; load {c.load_average()}", flush=True)
        ratio = c.median([r["ratio"] for r in runs])
        timeouts = sum(r["timeouts"] for r in runs)
        print(f"results (median of {args.repeat}): makespan {c.median([r['makespan'] for r in runs]):.2f} s; "
              f"bound {bound:.2f} s; ratio {ratio:.3f}; target <= {TARGET}: {c.verdict(ratio <= TARGET)}; "
              f"timeouts {timeouts} (target 0: {c.verdict(timeouts == 0)}); "
              f"failed {sum(r['failed'] for r in runs)}; peak per host {max(r['peak'] for r in runs)}")
        return 0
    finally:
        if stack is not None:
            stack.close()
        services.close()


if __name__ == "__main__":
    sys.exit(main())
