"""``motion``: one entry point for the embedded system, the production processes, admin tasks and
an API client.

- processes (``motion.process_cli``): ``up``, ``demo``, ``serve``, ``worker``, ``beat``, ``agent``;
- administration on the database (``motion.admin_cli``): ``db``, ``inventory``, ``keys``, ``users``;
- the API's client (``motion.client_cli``): ``jobs``, ``migrate``, ``pools``, ``hosts``, ``config``.

Production processes read their configuration from ``MOTION_*`` environment variables (see
README); ``--data-dir`` points admin and client commands at an embedded system instead. Every
subcommand has ``--help``. Logs go to standard error, as JSON when it is not a terminal
(``--log-format`` to choose).
"""
from __future__ import annotations

import argparse
import sys

from orchestrator import config

from . import admin_cli, client_args, process_cli

CLIENT = ("jobs", "migrate", "pools", "hosts", "config")
QUIET = ("demo", "keys", "users", "inventory", "db", *CLIENT)


def _settings(args) -> config.Settings:
    data_dir = getattr(args, "data_dir", None)
    if data_dir:  # an embedded system's database, whatever the environment says
        return config.from_env(data_dir=data_dir, database_url=config.sqlite_url(data_dir))
    return config.from_env()


def build_parser() -> argparse.ArgumentParser:
    summary = __doc__.split("\n\n")[0].replace("\n", " ").replace("``", "")
    p = argparse.ArgumentParser(prog="motion", description=summary)
    p.add_argument("--log-format", choices=["auto", "json", "text"], default="auto",
                   help="log lines on standard error: JSON, text, or auto (JSON unless a terminal)")
    p.add_argument("--log-level", default=None, metavar="LEVEL",
                   help="DEBUG, INFO, WARNING... (default INFO for processes, WARNING for the rest)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    process_cli.add_parsers(sub)
    admin_cli.add_parsers(sub)
    client_args.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from orchestrator import logformat

    # The demo and the one-shot commands print their own story; the long-running processes log.
    level = args.log_level or ("WARNING" if args.command in QUIET else "INFO")
    service = args.command if args.command in ("worker", "beat", "agent", "up", "serve") else "cli"
    logformat.configure({"serve": "api"}.get(service, service), level, args.log_format)
    return args.func(args, lambda: _settings(args))


if __name__ == "__main__":
    sys.exit(main())
