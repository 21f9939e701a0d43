"""Chaos run (issue 7): many migrations through the production processes while they are killed.

It starts the production stack on PostgreSQL and a private Redis (gunicorn API, ``--workers``
Celery worker processes, ``motion beat``, ``--agents`` throttled host agents), loads a generated
inventory, and submits ``--migrations`` migrations (single volumes and VMs with their volumes)
through the ``cs`` client. Meanwhile it kills workers and agents with SIGKILL at random moments
and starts them again, takes destination pools offline and online, and restarts Redis. Then it
stops injecting faults, brings everything back, waits (bounded) for every job to end, checks the
invariants (bench/chaos_checks.py) and prints a report. Exit code 0: no violation; 1: at least
one (each printed); 2: the run itself could not be set up.

    python bench/chaos.py --migrations 50 --workers 2 --kills 3 --seed 1

See docs/reliability.md for what it checks and the report of a large run.
"""
from __future__ import annotations

import os
import sys

# Import this directory as the package ``bench`` from the repository root, never as the first
# entry of sys.path (its helpers have short names that could shadow other modules).
BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [os.path.dirname(BENCH)] + [p for p in sys.path if os.path.abspath(p or ".") != BENCH]

import argparse  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

from cs import CloudStack  # noqa: E402

from bench import chaos_checks as checks  # noqa: E402
from bench.chaos_faults import Chaos, Watch, bring_everything_back, plan  # noqa: E402
from bench.chaos_load import Load, build_inventory  # noqa: E402
from bench.chaos_pg import PrivatePostgres  # noqa: E402
from bench.chaos_stack import Stack, create_database, drop_database, free_port  # noqa: E402
from orchestrator import inventory  # noqa: E402

CAUSES = (("pool offline", "offline"), ("agent restarted", "agent restarted"),
          ("destination agent down", "registering the VM on host"),
          ("agent unreachable", "has not answered"), ("deadline", "did not finish within"))


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="chaos", description=__doc__.splitlines()[0])
    p.add_argument("--migrations", type=int, default=50, help="migrations to submit (default 50)")
    p.add_argument("--workers", type=int, default=2, help="Celery worker processes (default 2)")
    p.add_argument("--concurrency", type=int, default=3,
                   help="per worker: pool processes (prefork) or jobs in flight (threads) (default 3)")
    p.add_argument("--pool", choices=("prefork", "threads"), default="prefork",
                   help="the workers' Celery pool (motion worker --pool; default prefork)")
    p.add_argument("--agents", type=int, default=2, help="agent processes, each serving whole clusters (default 2)")
    p.add_argument("--kills", type=int, default=3,
                   help="SIGKILLs: a third (at least one) hit agents, the rest workers (default 3)")
    p.add_argument("--pool-outages", type=int, help="pools taken offline and online (default: max(1, kills // 3))")
    p.add_argument("--redis-restarts", type=int, default=1, help="Redis restarts (default 1)")
    p.add_argument("--db-restarts", type=int, default=0,
                   help="PostgreSQL crashes (pg_ctl stop -m immediate, then start); the run then uses a "
                        "PostgreSQL server of its own, on a free port (default 0)")
    p.add_argument("--seed", type=int, help="seed of every random choice (default: random, printed)")
    p.add_argument("--database-url", help="an empty or migrated database to use (default: a new database "
                                          "motion_chaos_<random> on 127.0.0.1, dropped at the end)")
    p.add_argument("--keep", action="store_true", help="keep the database and the work directory (logs, agent data)")
    p.add_argument("--work-dir", help="where logs and agent data go (default: a new temporary directory)")
    p.add_argument("--clusters", type=int, default=2)
    p.add_argument("--hosts-per-cluster", type=int, default=2)
    p.add_argument("--vms-per-host", type=int, default=3)
    p.add_argument("--bandwidth", type=float, default=2.0, help="agent copy bandwidth, MiB/s per migration (default 2)")
    p.add_argument("--in-flight", type=int, help="pending migrations at most (default: 3 per host)")
    p.add_argument("--vm-share", type=float, default=0.3, help="share of VM-with-volumes migrations (default 0.3)")
    p.add_argument("--timeout", type=float, help="seconds for submitting (default: 120 + 2 per migration)")
    p.add_argument("--truth-interval", type=float, default=5.0,
                   help="seconds between runs of the reconciler against the agents' truth "
                        "(reconcile.truth.interval; default 5, so that it runs throughout the chaos; 0: off)")
    p.add_argument("--drain-timeout", type=float, default=300, help="seconds for the jobs to end afterwards")
    args = p.parse_args(argv)
    if args.kills < 0 or args.migrations < 1 or args.workers < 1 or args.agents < 1 or args.db_restarts < 0:
        p.error("--migrations, --workers and --agents must be at least 1, --kills and --db-restarts at least 0")
    if args.db_restarts and args.database_url:
        p.error("--db-restarts crashes a server of the run's own: it cannot be given --database-url")
    return args


def counts(args) -> dict[str, int]:
    agent_kills = max(1, args.kills // 3) if args.kills else 0
    outages = args.pool_outages if args.pool_outages is not None else max(1, args.kills // 3)
    return {"worker-kill": args.kills - agent_kills, "agent-kill": agent_kills, "pool-outage": outages,
            "redis-restart": args.redis_restarts, "db-restart": args.db_restarts}


def run(args, seed: int, work: Path, database_url: str, postgres=None) -> tuple[int, bool]:
    """Set up, load with chaos, drain, check, report; returns (exit code, warnings seen)."""
    hosts = args.clusters * args.hosts_per_cluster
    ports = {f"agent{i}": free_port() for i in range(min(args.agents, args.clusters))}
    data, agent_hosts = build_inventory(random.Random(f"{seed}-inventory"), args.clusters, args.hosts_per_cluster,
                                        args.vms_per_host, len(ports), ports, seed)
    (work / "inventory.yaml").write_text(inventory.to_yaml(data))
    stack = Stack(work, database_url, agent_hosts, ports, args.workers, args.concurrency, args.bandwidth,
                  pool=args.pool)
    stack.postgres = postgres  # the run's own server, for db-restart events
    began = time.monotonic()
    try:
        stack.prepare(work / "inventory.yaml", {"reconcile.truth.interval": f"{args.truth_interval:g}"})
        api = CloudStack(endpoint=f"http://127.0.0.1:{stack.api_port}/client/api", key=stack.key["apikey"],
                         secret=stack.key["secretkey"], timeout=30)
        sums = checks.truth(stack, api)
        load = Load(api, random.Random(f"{seed}-load"), args.migrations, args.in_flight or 3 * hosts, args.vm_share)
        events = plan(random.Random(f"{seed}-plan"), args.migrations, counts(args))
        print(f"chaos: {len(load.vm_ids)} VMs, {len(sums)} volumes on {hosts} hosts served by {len(ports)} agent(s); "
              f"{len(events)} events planned; work dir {work}", flush=True)
        peaks = checks.Peaks()
        timeout = args.timeout or 120 + 2 * args.migrations
        started = time.monotonic()
        chaos = Chaos(stack, load, random.Random(f"{seed}-chaos"), events, peaks, started, timeout)
        watch = Watch(stack, peaks, chaos.say)
        watch.start()
        chaos.start()
        load.submit_all(timeout)
        chaos.join(timeout=max(5.0, started + timeout + 60 - time.monotonic()))
        chaos.end = time.monotonic()  # if it still waits for something, it stops now
        chaos.join(timeout=60)
        loaded = time.monotonic()
        chaos.say("chaos over: every pool online, every process running; waiting for the jobs to end")
        restarted = bring_everything_back(stack, chaos)
        drained = load.wait_all(args.drain_timeout)
        watch.stop.set()
        watch.join(timeout=10)
        ended = time.monotonic()
        verdicts = {"every job terminal": checks.check_jobs(database_url)}
        verdicts.update(checks.check_volumes(stack, api, sums))
        verdicts.update(checks.check_vms(stack, api))
        verdicts["no reconciler repair needed"] = checks.check_repairs(database_url)
        verdicts["pool allocations equal their volumes"] = checks.check_allocations(database_url)
        limit_bad, peak_figures = checks.check_limits(stack, peaks)
        verdicts["per-host concurrency within the limit"] = limit_bad
        recovery = checks.recovery_figures(database_url, chaos.affected)
    finally:
        stack.stop()
    errors = checks.log_errors(work)
    restarts = checks.worker_restarts(work)
    times = dict(setup=started - began, chaos=loaded - started, drain=ended - loaded)
    report(args, seed, len(ports), hosts, load, chaos, watch, stack, restarted, drained, times, verdicts,
           peak_figures, recovery, errors, restarts)
    warnings = bool(stack.procs.crashes) or any("Internal error" in t for t in load.rejected) or bool(errors)
    return (1 if any(verdicts.values()) else 0), warnings


def report(args, seed, agents, hosts, load, chaos, watch, stack, restarted, drained, times, verdicts, peaks,
           recovery, errors, restarts=()):
    jobs = list(load.jobs.values())
    kinds = Counter(j.kind for j in jobs)
    failed = [j for j in jobs if j.status == 2]
    causes = Counter(next((name for name, text in CAUSES if text in j.error), "other") for j in failed)
    events = Counter(e["kind"] for e in chaos.done)
    durations = [j.ended - j.submitted for j in jobs if j.ended]
    violations = [v for found in verdicts.values() for v in found]
    print(f"\nchaos report (seed {seed}): {args.migrations} migrations, {args.workers} workers x {args.concurrency} ({args.pool}), "
          f"{agents} agents, {hosts} hosts, bandwidth {args.bandwidth:g} MiB/s, volumes 1-4 MiB")
    print(f"  time: setup {times['setup']:.1f} s, load and chaos {times['chaos']:.1f} s, "
          f"drain {times['drain']:.1f} s{'' if drained else ' (drain timed out)'}")
    print(f"  migrations submitted: {len(jobs)} (volume {kinds['volume']}, vm {kinds['vm']}); "
          f"rejected at intake: {sum(load.rejected.values())}; API errors: {load.api_errors}")
    for text, n in load.rejected.most_common(3):
        print(f"    {'WARNING (HTTP 500) ' if 'Internal error' in text else ''}rejected {n}x: {text}")
    print(f"  successes: {sum(j.status == 1 for j in jobs)}; failures: {len(failed)} "
          f"({', '.join(f'{c} {n}' for c, n in causes.most_common()) or 'none'})")
    for j in [j for j in failed if not any(text in j.error for _n, text in CAUSES)][:3]:
        print(f"    other failure: {j.label}: {j.error[:300]}")
    if durations:
        print(f"  job time from submission: median {statistics.median(durations):.1f} s, max {max(durations):.1f} s")
    print(f"  kills: {events['worker-kill'] + events['agent-kill']} (worker {events['worker-kill']}, "
          f"agent {events['agent-kill']}); faults: "
          f"{events['pool-outage'] + events['redis-restart'] + events['db-restart']} "
          f"(pool outages {events['pool-outage']}, redis restarts {events['redis-restart']}, "
          f"database restarts {events['db-restart']})")
    hit = {k: recovery[k] for k in ("worker-kill", "agent-kill", "redis-restart", "db-restart", "pool-outage")}
    print(f"  recoveries: {recovery['stranded'][1]} (stranded jobs that ended: {recovery['stranded'][1]} of "
          f"{recovery['stranded'][0]}; by event, hit/ended: "
          f"{', '.join(f'{k} {n}/{e}' for k, (n, e) in hit.items())}); resumed by another worker: {watch.resumed()}")
    print(f"  jobs claimed more than once (attempt > 1): {recovery['claimed again']}; "
          f"reconciler repairs: {recovery['repairs']} (truth reconciler every {args.truth_interval:g} s)")
    print(f"  peak per host: agents {peaks['agent']}; by job times {peaks['jobs']}; limit {peaks['limit']}")
    crashes = stack.procs.crashes
    print(f"  processes that ended by themselves: {len(crashes)}{':' if crashes else ''}")
    for name, code, line in crashes:
        print(f"    WARNING {name} exited with {code}: {line}")
    print(f"  Celery workers that exited by themselves and were started again by motion worker: "
          f"{len(restarts)}{':' if restarts else ''}")
    for text, n in Counter(restarts).most_common(3):
        print(f"    {n}x {text}")
    if restarted:
        print(f"  not running when the chaos ended (started again): {', '.join(restarted)}")
    print(f"  errors in the orchestrator's logs: {sum(errors.values())}{':' if errors else ''}")
    for text, n in errors.most_common(8):
        alarming = any(word in text.lower() for word in ("deadlock", "internal error", "unrecoverable"))
        print(f"    {'WARNING ' if alarming else ''}{n}x {text}")
    if chaos.error:
        print(f"  chaos error: {chaos.error}")
    for name, found in verdicts.items():
        print(f"  check {name}: {'ok' if not found else f'{len(found)} VIOLATION(S)'}")
    print(f"violations: {len(violations)}")
    for v in violations[:50]:
        print(f"  VIOLATION: {v}")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    print(f"chaos: seed {seed}", flush=True)
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="motion-chaos-"))
    work.mkdir(parents=True, exist_ok=True)
    postgres = None
    try:
        if args.db_restarts:
            postgres = PrivatePostgres(free_port())
            postgres.start()
        database_url = args.database_url or create_database(*([postgres.admin_url] if postgres else []))
    except Exception as exc:
        print(f"chaos: cannot create a PostgreSQL database: {exc}", file=sys.stderr)
        if postgres is not None:
            postgres.close()
        return 2
    code, warnings = 2, False
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(2))  # stop the processes on the way out
    try:
        code, warnings = run(args, seed, work, database_url, postgres)
    except RuntimeError as exc:
        print(f"chaos: the run could not go on: {exc}", file=sys.stderr)
    except Exception:  # a bug of the tool, not a violation: exit 2, with the traceback
        traceback.print_exc()
    finally:
        if postgres is not None:  # the run's own server: gone with its databases (--keep keeps none)
            postgres.close()
        elif not args.keep and not args.database_url:
            drop_database(database_url)
        if args.keep or code != 0 or warnings:  # the logs are the reproduction
            print(f"chaos: kept the work dir {work} (process logs, agent data)"
                  + (f" and database {database_url}" if args.keep else ""))
        else:
            shutil.rmtree(work, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
