"""``motion``: one entry point for the embedded system, the production processes and admin tasks.

Production processes read their configuration from ``MOTION_*`` environment variables (see
README); ``--data-dir`` points admin commands at an embedded system instead.
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from orchestrator import config


def _settings(args) -> config.Settings:
    data_dir = getattr(args, "data_dir", None)
    if data_dir:  # an embedded system's database, whatever the environment says
        return config.from_env(data_dir=data_dir, database_url=config.sqlite_url(data_dir))
    return config.from_env()


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass


def cmd_up(args) -> int:
    from .embedded import EmbeddedSystem

    system = EmbeddedSystem(args.data_dir, port=args.port, bind=args.bind,
                            inventory_file=args.inventory, bandwidth_mib_s=args.bandwidth)
    system.start()
    print(f"motion is up: endpoint {system.endpoint}", flush=True)
    print(f"cloudstack.ini: {system.ini_path}  (CLOUDSTACK_CONFIG={system.ini_path} cs listVolumes)",
          flush=True)
    try:
        _wait_for_signal()
    finally:
        print("motion: shutting down", flush=True)
        system.stop()
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(data_dir=args.data_dir, bandwidth=args.bandwidth)


def cmd_serve(args) -> int:
    from werkzeug.serving import run_simple

    from api import create_app

    run_simple(args.bind, args.port, create_app(_settings(args)), threaded=True)
    return 0


def cmd_worker(args) -> int:
    from workers.app import create_celery

    app = create_celery(_settings(args))
    app.worker_main(["worker", "-l", args.loglevel, "-c", str(args.concurrency), "-Q", "motion",
                     "--without-gossip", "--without-mingle"])
    return 0


def cmd_beat(args) -> int:
    """The scheduler (run exactly one): every few seconds, the sweep of orchestrator.reconcile.

    It runs the sweep itself rather than sending it to the workers, so it is never stuck behind
    long migrations. (``celery -A workers.app beat`` also works: it sends motion.sweep tasks.)
    """
    from orchestrator import reconcile
    from orchestrator.db import Database
    from workers.agent_client import AgentClient
    from workers.app import celery_enqueuer

    settings = _settings(args)
    db, enqueue, agent = Database(settings.database_url), celery_enqueuer(settings), AgentClient(settings.agent_timeout)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    logging.getLogger(__name__).info("motion beat: sweeping every %s s", args.interval)
    while not stop.is_set():
        try:
            reconcile.sweep(db, enqueue, agent, settings)
        except Exception:  # a broker or database outage: log it and try again next round
            logging.getLogger(__name__).exception("sweep failed; retrying")
        stop.wait(args.interval)
    db.dispose()
    return 0


def cmd_agent(args) -> int:
    from agent.main import main as agent_main

    hosts = list(args.host or [])
    if args.all_hosts:  # every host of the inventory in the configured database
        from sqlalchemy import select

        from orchestrator.db import Database
        from orchestrator.models import Host

        db = Database(_settings(args).database_url)
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
    return agent_main(argv) or 0


def cmd_db(args) -> int:
    import migrations

    url = _settings(args).database_url
    if args.action == "upgrade":
        migrations.upgrade(url, args.revision or "head")
    elif args.action == "downgrade":
        migrations.downgrade(url, args.revision or "-1")
    print(migrations.current(url) or "(empty database)")
    return 0


def cmd_inventory(args) -> int:
    import yaml

    from orchestrator import inventory
    from orchestrator.db import Database
    from orchestrator.errors import InventoryError

    if args.action == "generate":
        data = inventory.generate(zones=args.zones, clusters_per_pod=args.clusters_per_pod,
                                  hosts_per_cluster=args.hosts_per_cluster,
                                  shared_pools_per_cluster=args.pools_per_cluster,
                                  vms_per_host=args.vms_per_host, data_volumes_per_vm=args.data_volumes,
                                  volume_size=args.volume_size, seed=args.seed)
        _write(yaml.safe_dump(data, sort_keys=False), args.output)
        return 0
    settings = _settings(args)
    db = Database(settings.database_url)
    try:
        if args.action == "load":
            counts = inventory.load_file(db, args.file)
            print(json.dumps(counts))
        elif args.action == "dump":
            with db.uow() as uow:
                _write(yaml.safe_dump(inventory.dump(uow.session), sort_keys=False), args.output)
        elif args.action == "provision":
            from orchestrator.provision import provision_volumes
            from workers.agent_client import AgentClient

            print(f"{provision_volumes(db, AgentClient(settings.agent_timeout), settings)} volumes provisioned")
    except InventoryError as exc:
        print(f"inventory rejected, nothing loaded: {exc.text}", file=sys.stderr)
        return 2
    finally:
        db.dispose()
    return 0


def cmd_keys(args) -> int:
    from .accounts_cli import keys

    if args.action == "create" and args.apikey:
        build_parser().error("keys create takes no APIKEY")
    return keys(args, _settings(args))


def cmd_users(args) -> int:
    from .accounts_cli import users

    return users(args, _settings(args))


def _write(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text)
    else:
        sys.stdout.write(text)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="motion", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run everything in one process (embedded default)")
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
    worker.add_argument("--concurrency", type=int, default=2)
    worker.add_argument("--loglevel", default="info")
    worker.set_defaults(func=cmd_worker)

    beat = sub.add_parser("beat", help="run the scheduler: outbox, stranded jobs, orphans (exactly one)")
    beat.add_argument("--interval", type=float, default=5.0, help="seconds between sweeps")
    beat.set_defaults(func=cmd_beat)

    ag = sub.add_parser("agent", help="run a host agent with the simulated Hyper-V backend")
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
    ag.set_defaults(func=cmd_agent)

    db = sub.add_parser("db", help="schema migrations (Alembic)")
    db.add_argument("action", choices=["upgrade", "downgrade", "current"])
    db.add_argument("revision", nargs="?")
    db.add_argument("--data-dir")
    db.set_defaults(func=cmd_db)

    inv = sub.add_parser("inventory", help="load, dump, generate or provision the inventory")
    inv.add_argument("action", choices=["load", "dump", "generate", "provision"])
    inv.add_argument("file", nargs="?")
    inv.add_argument("-o", "--output")
    inv.add_argument("--data-dir")
    inv.add_argument("--zones", type=int, default=1)
    inv.add_argument("--clusters-per-pod", type=int, default=2)
    inv.add_argument("--hosts-per-cluster", type=int, default=2)
    inv.add_argument("--pools-per-cluster", type=int, default=2)
    inv.add_argument("--vms-per-host", type=int, default=1)
    inv.add_argument("--data-volumes", type=int, default=1)
    inv.add_argument("--volume-size", default="4MiB")
    inv.add_argument("--seed", type=int, default=0)
    inv.set_defaults(func=cmd_inventory)

    keys = sub.add_parser("keys", help="API keys: create, list, disable, enable")
    keys.add_argument("action", choices=["create", "list", "disable", "enable"])
    keys.add_argument("apikey", nargs="?", help="disable/enable: the api key whose user to switch")
    keys.add_argument("--role", choices=["admin", "domainadmin", "user"], default="admin")
    keys.add_argument("--account", help="create: account name (default: admin for admins, generated "
                                        "otherwise); disable/enable: switch this whole account")
    keys.add_argument("--username", help="create: user name (default: generated)")
    keys.add_argument("--json", action="store_true")
    keys.add_argument("--data-dir", help="the embedded system of 'motion up --data-dir DIR' (also while it runs)")
    keys.set_defaults(func=cmd_keys)

    users = sub.add_parser("users", help="users who log in with a password")
    users.add_argument("action", choices=["create"])
    users.add_argument("username")
    users.add_argument("--role", choices=["admin", "domainadmin", "user"], default="user")
    users.add_argument("--account", help="account name (default: the user name; created when missing)")
    users.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    users.add_argument("--with-keys", action="store_true", help="also issue an api key pair")
    users.add_argument("--json", action="store_true")
    users.add_argument("--data-dir", help="the embedded system of 'motion up --data-dir DIR' (also while it runs)")
    users.set_defaults(func=cmd_users)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The demo prints its own story; the long-running processes log what they do.
    quiet = args.command in ("demo", "keys", "inventory", "db")
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "inventory" and args.action == "load" and not args.file:
        build_parser().error("inventory load needs FILE")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
