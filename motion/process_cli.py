"""``motion up|demo|serve|worker|beat|agent``: the long-running processes.

Each reads ``MOTION_*`` settings from the environment (``orchestrator.config``); the worker and
the agent serve Prometheus metrics (``--metrics-port`` for the worker, ``/metrics`` on the agent's
own port); every one logs through ``orchestrator.logformat``.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import tempfile
import threading

log = logging.getLogger("motion")


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass


def cmd_up(args, settings) -> int:
    from agent.serve import install_log_fields

    from .embedded import EmbeddedSystem

    install_log_fields()
    system = EmbeddedSystem(args.data_dir, port=args.port, bind=args.bind,
                            inventory_file=args.inventory, bandwidth_mib_s=args.bandwidth)
    system.start()
    print(f"motion is up: endpoint {system.endpoint}", flush=True)
    print(f"cloudstack.ini: {system.ini_path}  (CLOUDSTACK_CONFIG={system.ini_path} cs listVolumes)",
          flush=True)
    print(f"metrics: {system.endpoint.rsplit('/client/api', 1)[0]}/metrics  "
          f"(motion jobs list --data-dir {args.data_dir})", flush=True)
    try:
        _wait_for_signal()
    finally:
        print("motion: shutting down", flush=True)
        system.stop()
    return 0


def cmd_demo(args, settings) -> int:
    from .demo import run_demo

    return run_demo(data_dir=args.data_dir, bandwidth=args.bandwidth)


def cmd_serve(args, settings) -> int:
    from werkzeug.serving import run_simple

    from api import create_app

    run_simple(args.bind, args.port, create_app(settings()), threaded=True)
    return 0


POOLS = ("prefork", "threads")
# prefork: processes (one job each); threads: jobs one process holds in flight at once
DEFAULT_CONCURRENCY = {"prefork": 2, "threads": 8}


def _concurrency(args) -> int:
    return args.concurrency if args.concurrency else DEFAULT_CONCURRENCY[args.pool]


def _worker_child_argv(args) -> list[str]:
    """``motion worker`` with the same options, run by the supervisor without its loop."""
    argv = [sys.executable, "-m", "motion.cli", "--log-format", getattr(args, "log_format", "auto") or "auto"]
    if getattr(args, "log_level", None):
        argv += ["--log-level", args.log_level]
    argv += ["worker", "--no-supervise", "--pool", args.pool, "--concurrency", str(_concurrency(args)),
             "--loglevel", args.loglevel]
    if args.metrics_port:
        argv += ["--metrics-port", str(args.metrics_port)]
    if args.events:
        argv.append("--events")
    return argv


def cmd_worker(args, settings) -> int:
    """A Celery worker; by default under ``motion.supervise`` (started again if it exits by itself)."""
    if not args.no_supervise:
        from .supervise import Supervisor

        env, metrics_dir = dict(os.environ), None
        if args.metrics_port and not env.get("PROMETHEUS_MULTIPROC_DIR"):
            # One directory for every incarnation of the worker: its counters survive a restart.
            metrics_dir = tempfile.mkdtemp(prefix="motion-worker-metrics-")
            env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        try:
            return Supervisor(_worker_child_argv(args), env).run()
        finally:
            if metrics_dir:
                shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir = None
    if args.metrics_port:
        # Prefork children keep their numbers in files here; the main process's port adds them up.
        # prometheus_client reads the variable when first imported, so this comes before any import.
        if "prometheus_client" in sys.modules:
            log.warning("metrics: prometheus_client was imported early; child processes are not counted")
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            metrics_dir = tempfile.mkdtemp(prefix="motion-worker-metrics-")
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    from workers.app import create_celery

    argv = ["worker", "-l", args.loglevel, "-P", args.pool, "-c", str(_concurrency(args)), "-Q", "motion",
            "--without-gossip", "--without-mingle"]
    if args.metrics_port:
        argv += ["--metrics-port", str(args.metrics_port)]
    if args.events:
        argv.append("-E")
    try:
        create_celery(settings()).worker_main(argv)
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def cmd_beat(args, settings) -> int:
    """The scheduler (run exactly one): every few seconds, the sweep of orchestrator.reconcile.

    It runs the sweep itself rather than sending it to the workers, so it is never stuck behind
    long migrations. (``celery -A workers.app beat`` also works: it sends motion.sweep tasks.)
    """
    from orchestrator import clock, reconcile
    from orchestrator.db import Database, first_line, unavailable
    from workers.agent_client import AgentClient
    from workers.app import celery_enqueuer

    conf = settings()
    db = Database(conf.database_url, application_name="motion-beat")
    enqueue, agent = celery_enqueuer(conf), AgentClient(conf.agent_timeout)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    log.info("motion beat: sweeping every %s s", args.interval)
    try:
        clock.check(db, "beat")  # the sweep compares times other machines wrote
    except Exception as exc:  # the database may not be up yet: the sweeps say so
        log.warning("beat: clock check skipped: %s", first_line(exc))
    while not stop.is_set():
        try:
            reconcile.sweep(db, enqueue, agent, conf)
        except Exception as exc:  # a broker or database outage: log it and try again next round
            if unavailable(exc):
                log.warning("sweep: the database is unavailable (%s); retrying", first_line(exc))
            else:
                log.exception("sweep failed; retrying")
        stop.wait(args.interval)
    db.dispose()
    return 0


def cmd_agent(args, settings) -> int:
    from agent.main import main as agent_main

    hosts = list(args.host or [])
    if args.all_hosts:  # every host of the inventory in the configured database
        from sqlalchemy import select

        from orchestrator.db import Database
        from orchestrator.models import Host

        db = Database(settings().database_url, application_name="motion-cli")
        with db.uow() as uow:
            hosts += [h for h in uow.session.scalars(select(Host.name).order_by(Host.id)) if h not in hosts]
        db.dispose()
    if not hosts:
        print("motion agent: name at least one --host, or use --all-hosts", file=sys.stderr)
        return 2
    argv = sum((["--host", h] for h in hosts), [])
    argv += ["--root", args.root, "--bind", args.bind, "--port", str(args.port),
             "--max-storage-migrations", str(args.max_storage_migrations)]
    if args.bandwidth:
        argv += ["--bandwidth", str(args.bandwidth)]
    if args.guest_writes:
        argv += ["--guest-writes", str(args.guest_writes)]
    if args.fault_plan:
        argv += ["--fault-plan", args.fault_plan]
    if args.command_retention is not None:
        argv += ["--command-retention", str(args.command_retention)]
    return agent_main(argv) or 0


def add_parsers(sub) -> None:
    up = sub.add_parser("up", help="run everything in one process (embedded default)",
                        description="API, worker, scheduler and agents in one process on SQLite; Ctrl-C stops it.")
    up.add_argument("--port", type=int, default=8080)
    up.add_argument("--bind", default="127.0.0.1")
    up.add_argument("--data-dir", default="motion-data")
    up.add_argument("--inventory", help="inventory YAML (default: the built-in demo inventory)")
    up.add_argument("--bandwidth", type=float, help="agent copy bandwidth in MiB/s (default unthrottled)")
    up.set_defaults(func=cmd_up)

    demo = sub.add_parser("demo", help="run the seed's scenario 1 on a fresh embedded system")
    demo.add_argument("--data-dir", help="keep the system here (default: a temporary directory)")
    demo.add_argument("--bandwidth", type=float, default=None)
    demo.set_defaults(func=cmd_demo)

    serve = sub.add_parser("serve", help="serve the API (development server; use gunicorn in production)")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--bind", default="127.0.0.1")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run a Celery worker (MOTION_DATABASE_URL, MOTION_BROKER_URL)")
    worker.add_argument("--pool", choices=POOLS, default="prefork",
                        help="prefork (default): --concurrency processes, each running one job at a "
                             "time; threads: one process running --concurrency jobs at once, their "
                             "waits on the agent and the database overlapped (docs/jobs.md)")
    worker.add_argument("--concurrency", type=int, default=None, metavar="N",
                        help=f"prefork: worker processes (default {DEFAULT_CONCURRENCY['prefork']}); "
                             f"threads: jobs in flight in this process (default {DEFAULT_CONCURRENCY['threads']})")
    worker.add_argument("--loglevel", default="info")
    worker.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                        help="serve this worker's Prometheus metrics on http://0.0.0.0:PORT/metrics "
                             "(default: off; the Procfile uses $MOTION_METRICS_PORT or 9102)")
    worker.add_argument("--events", action="store_true", help="send Celery task events (for Flower)")
    worker.add_argument("--no-supervise", action="store_true",
                        help="run Celery in this process, without the restart loop (by default the "
                             "worker runs as a child and is started again when it exits by itself)")
    worker.set_defaults(func=cmd_worker)

    beat = sub.add_parser("beat", help="run the scheduler: outbox, stranded jobs, orphans (exactly one)")
    beat.add_argument("--interval", type=float, default=5.0, help="seconds between sweeps")
    beat.set_defaults(func=cmd_beat)

    ag = sub.add_parser("agent", help="run a host agent with the simulated Hyper-V backend",
                        description="A host agent; it also answers GET /metrics on its port.")
    ag.add_argument("--host", action="append", help="host name (repeatable)")
    ag.add_argument("--all-hosts", action="store_true",
                    help="serve every host of the inventory in the configured database")
    ag.add_argument("--data-dir")
    ag.add_argument("--root", default="agent-data")
    ag.add_argument("--bind", default="127.0.0.1")
    ag.add_argument("--port", type=int, default=8250)
    ag.add_argument("--max-storage-migrations", type=int, default=2)
    ag.add_argument("--bandwidth", type=float, help="copy bandwidth in MiB/s (default unthrottled)")
    ag.add_argument("--guest-writes", type=float, default=0,
                    help="simulated guest writes per second per running VM (default 0: idle guests)")
    ag.add_argument("--fault-plan", help="JSON fault plan for the simulated backend (docs/agent-protocol.md)")
    ag.add_argument("--command-retention", type=float, metavar="DAYS",
                    help="keep a finished command's record this many days (default 7; at least 2 x its "
                         "wait + 1 hour)")
    ag.set_defaults(func=cmd_agent)
