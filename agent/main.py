"""The agent's command line: serve one or more simulated hypervisor hosts until SIGINT/SIGTERM.

``python -m agent --host h1 --host h2 --root agent-data`` (the ``motion agent`` command calls
``main`` too). It prints one line with the URL once it is listening, and on SIGINT or SIGTERM
stops serving and closes the host agents before returning 0. ``--guest-writes`` turns the
simulated guests on; ``--zero-copy`` makes migrations link files instead of copying them
(benchmarks); ``--fault-plan`` injects faults from the start (a ``crash`` fault ends the
process with exit code 70); ``--command-retention`` says how long finished commands are kept.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys

from agent.backends.faults import load_fault_plan
from agent.commands import RETENTION
from agent.errors import InvalidRequest
from agent.serve import AgentServer, install_log_fields


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="motion agent", description=__doc__.splitlines()[0])
    parser.add_argument("--host", dest="hosts", action="append", required=True, metavar="NAME",
                        help="a hypervisor host this agent serves (repeat for several)")
    parser.add_argument("--root", default="agent-data", metavar="DIR",
                        help="data root: pool directories and the agent's state (default: agent-data)")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8250, help="port to listen on, 0 = any free (default: 8250)")
    parser.add_argument("--max-storage-migrations", type=int, default=2, metavar="N",
                        help="storage migrations running at once per host; more wait in a queue (default: 2)")
    parser.add_argument("--bandwidth", type=float, default=None, metavar="MIB_PER_S",
                        help="throttle each migration's copy to this many MiB/s (default: unthrottled)")
    parser.add_argument("--guest-writes", type=float, default=0.0, metavar="PER_S",
                        help="simulated guests of registered VMs write this many blocks per second to "
                             "each volume (default: 0 = off)")
    parser.add_argument("--zero-copy", action="store_true",
                        help="benchmarks: a migration hard-links the volume file into the destination pool "
                             "instead of copying it, so it completes at once (see docs/agent-protocol.md)")
    parser.add_argument("--fault-plan", default=None, metavar="FILE",
                        help="JSON list of faults to inject from the start (see docs/agent-protocol.md)")
    parser.add_argument("--command-retention", type=float, default=RETENTION / 86400, metavar="DAYS",
                        help="keep a finished command's record this many days (at least 2 x its wait + "
                             "1 hour; default: 7)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.max_storage_migrations < 1:
        build_parser().error("--max-storage-migrations must be at least 1")
    if args.bandwidth is not None and args.bandwidth <= 0:
        build_parser().error("--bandwidth must be positive")
    if args.guest_writes < 0:
        build_parser().error("--guest-writes must not be negative")
    if not args.command_retention > 0:
        build_parser().error("--command-retention must be a positive number of days")
    # Under ``motion agent`` logging is set up already (JSON when not a terminal); alone, plain text.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_fields()
    try:
        plan = load_fault_plan(args.fault_plan) if args.fault_plan else None
        server = AgentServer(args.hosts, args.root, bind=args.bind, port=args.port,
                             max_storage_migrations=args.max_storage_migrations,
                             bandwidth_mib_s=args.bandwidth, guest_writes_per_s=args.guest_writes,
                             fault_plan=plan, zero_copy=args.zero_copy,
                             command_retention=args.command_retention * 86400)
    except InvalidRequest as exc:
        print(f"motion agent: cannot start: {exc.message}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"motion agent: cannot start: {exc}", file=sys.stderr)
        return 2
    previous = {sig: signal.signal(sig, lambda *_: server.request_stop())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        print(f"motion agent listening on {server.url} hosts={','.join(args.hosts)}", flush=True)
        server.serve_forever()
    finally:
        server.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
