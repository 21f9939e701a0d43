"""``motion db|inventory|keys|users``: administration on the database itself (no API needed).

They act on the configured database (``MOTION_DATABASE_URL``) or, with ``--data-dir DIR``, on the
embedded system of ``motion up --data-dir DIR``. Refusals print the reason and exit 2.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def _write(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text)
    else:
        sys.stdout.write(text)


def cmd_db(args, settings) -> int:
    import migrations

    url = settings().database_url
    if args.data_dir:  # a new embedded system's directory: SQLite creates the file, not the folder
        Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    if args.action == "upgrade":
        migrations.upgrade(url, args.revision or "head")
    elif args.action == "downgrade":
        migrations.downgrade(url, args.revision or "-1")
    print(migrations.current(url) or "(empty database)")
    return 0


def cmd_inventory(args, settings) -> int:
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
    if args.action == "load" and not args.file:
        print("motion inventory: load needs FILE", file=sys.stderr)
        return 2
    conf = settings()
    db = Database(conf.database_url, application_name="motion-cli")
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

            print(f"{provision_volumes(db, AgentClient(conf.agent_timeout), conf)} volumes provisioned")
    except InventoryError as exc:
        print(f"inventory rejected, nothing loaded: {exc.text}", file=sys.stderr)
        return 2
    finally:
        db.dispose()
    return 0


def cmd_keys(args, settings) -> int:
    from .accounts_cli import keys

    if args.action == "create" and args.apikey:
        print("motion keys: keys create takes no APIKEY", file=sys.stderr)
        return 2
    return keys(args, settings())


def cmd_users(args, settings) -> int:
    from .accounts_cli import users

    return users(args, settings())


def add_parsers(sub) -> None:
    db = sub.add_parser("db", help="schema migrations (Alembic): upgrade, downgrade, current")
    db.add_argument("action", choices=["upgrade", "downgrade", "current"])
    db.add_argument("revision", nargs="?", help="upgrade: target (default head); downgrade: default -1")
    db.add_argument("--data-dir")
    db.set_defaults(func=cmd_db)

    inv = sub.add_parser("inventory", help="load, dump, generate or provision the inventory (docs/inventory.md)")
    inv.add_argument("action", choices=["load", "dump", "generate", "provision"])
    inv.add_argument("file", nargs="?", help="load: the inventory YAML")
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
    keys.add_argument("apikey", nargs="?", help="disable/enable: the api key whose user to switch "
                                                "(a key of an older version starting with '-': put '--' before it)")
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
