"""The command lines of ``motion jobs|migrate|pools|hosts|config`` (run by ``motion.client_cli``)."""
from __future__ import annotations

import argparse

JSON_LINES = ("with --json: one JSON object per change (the queryAsyncJobResult answer), the last "
              "one being the finished job")


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", metavar="DIR",
                        help="talk to the embedded system of 'motion up --data-dir DIR' (its cloudstack.ini); "
                             "default: the cs client's configuration (CLOUDSTACK_CONFIG, cloudstack.ini)")
    common.add_argument("--region", help="section of cloudstack.ini (default: $CLOUDSTACK_REGION or cloudstack)")
    common.add_argument("--json", action="store_true", help="print JSON")
    return common


def _watching() -> argparse.ArgumentParser:
    watching = argparse.ArgumentParser(add_help=False)
    watching.add_argument("--interval", type=float, default=0.5, metavar="SECONDS",
                          help="seconds between two looks at the job (default 0.5)")
    return watching


def add_parsers(sub) -> None:
    from .client_cli import run

    common, watching = _common(), _watching()

    jobs = sub.add_parser("jobs", help="list, show or watch async jobs (through the API)")
    actions = jobs.add_subparsers(dest="action", required=True, metavar="{list,show,watch}")
    ls = actions.add_parser("list", parents=[common, watching], help="list jobs",
                            description="List async jobs (listAsyncJobs). --json: a JSON list per refresh.")
    ls.add_argument("--status", choices=["pending", "succeeded", "failed"], help="only jobs in this status")
    ls.add_argument("--watch", action="store_true",
                    help="refresh until no listed job is pending (a new table, or JSON list, per change)")
    show = actions.add_parser("show", parents=[common], help="one job's status and result",
                              description="queryAsyncJobResult JOBID. --json: its answer as is.")
    show.add_argument("jobid")
    watch = actions.add_parser("watch", parents=[common, watching],
                               help="follow a job to its end with progress bars; exit 0 if it succeeds",
                               description="Show a job's progress until it ends: bars on a terminal, "
                                           "key=value lines otherwise; " + JSON_LINES +
                                           ". Exit 0 succeeded, 1 failed (the error on stderr).")
    watch.add_argument("jobid")

    migrate = sub.add_parser("migrate", help="live-migrate a volume to a pool, or a VM to a host")
    actions = migrate.add_subparsers(dest="action", required=True, metavar="{volume,vm}")
    wait = argparse.ArgumentParser(add_help=False)
    wait.add_argument("--wait", action="store_true",
                      help="follow the job to its end as 'motion jobs watch' does, and exit with its outcome")
    vol = actions.add_parser("volume", parents=[common, watching, wait],
                             help="migrateVolume VOLUME (name or UUID) to POOL",
                             description="migrateVolume with livemigrate=true. Prints the job id "
                                         "(--json: {\"jobid\": ...}); with --wait follows it.")
    vol.add_argument("volume")
    vol.add_argument("pool")
    vm = actions.add_parser("vm", parents=[common, watching, wait],
                            help="migrateVirtualMachineWithVolume VM to HOST",
                            description="migrateVirtualMachineWithVolume. Volumes not mapped are placed "
                                        "automatically. Prints the job id; with --wait follows it.")
    vm.add_argument("vm")
    vm.add_argument("host")
    vm.add_argument("--map", action="append", metavar="VOLUME=POOL",
                    help="put this volume (name or UUID) on this pool (repeatable)")

    pools = sub.add_parser("pools", help="which pools a volume could move to, and why not")
    actions = pools.add_subparsers(dest="action", required=True, metavar="{for}")
    pfor = actions.add_parser("for", parents=[common], help="findStoragePoolsForMigration for VOLUME",
                              description="findStoragePoolsForMigration; --json: its storagepool list.")
    pfor.add_argument("volume")

    hosts = sub.add_parser("hosts", help="which hosts a VM could move to, and why not")
    actions = hosts.add_subparsers(dest="action", required=True, metavar="{for}")
    hfor = actions.add_parser("for", parents=[common], help="findHostsForMigration for VM",
                              description="findHostsForMigration; --json: its host list.")
    hfor.add_argument("vm")

    conf = sub.add_parser("config", help="global configuration (listConfigurations, updateConfiguration)")
    actions = conf.add_subparsers(dest="action", required=True, metavar="{get,set}")
    get = actions.add_parser("get", parents=[common], help="show one setting, or all",
                             description="listConfigurations; --json: the configuration object(s).")
    get.add_argument("name", nargs="?")
    put = actions.add_parser("set", parents=[common], help="change a setting (e.g. wait)",
                             description="updateConfiguration NAME VALUE; --json: the updated object.")
    put.add_argument("name")
    put.add_argument("value")

    for parser in (jobs, migrate, pools, hosts, conf):
        parser.set_defaults(func=run)
