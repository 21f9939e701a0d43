"""``motion jobs|migrate|pools|hosts|config``: the API's client, signed like any CloudStack client.

The endpoint and key come from ``--data-dir DIR`` (an embedded system) or from the ``cs``
client's configuration (``motion.clientconfig``). Objects are named by name or UUID. Exit codes:
0 done (a watched job succeeded), 1 the operation failed (a job failed - its error text on
standard error -, the API refused the request or could not be reached), 2 a usage error (bad
arguments, a name that matches nothing or several objects, no configuration), 130 interrupted.
``--json`` prints JSON: the API's objects as they come (see each subcommand's ``--help``).
"""
from __future__ import annotations

import json
import re
import sys
import time

from . import progress
from .clientconfig import ConfigMissing, load

UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
KINDS = {"volume": ("listVolumes", "volume"), "vm": ("listVirtualMachines", "virtualmachine"),
         "host": ("listHosts", "host"), "pool": ("listStoragePools", "storagepool")}
STATUS_CODES = {"pending": 0, "succeeded": 1, "failed": 2}


class UsageError(Exception):
    """Raised when the command line names something that does not exist or is ambiguous."""


def client(args):
    from .client import Client

    conf = load(getattr(args, "data_dir", None), getattr(args, "region", None))
    return Client(conf["endpoint"], conf["key"], conf["secret"], timeout=conf["timeout"])


def resolve(api, kind: str, ref: str, **scope) -> dict:
    """The one ``kind`` object named ``ref`` (a UUID or a name), within ``scope`` filters."""
    command, key = KINDS[kind]
    found = api.list_all(command, key, **({"id": ref} if UUID.match(ref) else {"name": ref}), **scope)
    found = [o for o in found if o.get("id") == ref.lower() or o.get("name") == ref]
    if len(found) == 1:
        return found[0]
    if not found:
        raise UsageError(f"no {kind} named {ref!r}")
    raise UsageError(f"{len(found)} {kind}s are named {ref!r}; give the UUID: "
                     + ", ".join(o["id"] for o in found))


def _print_table(rows: list[list], header: list[str]) -> None:
    rows = [[progress.word(c) if not isinstance(c, str) or not c else c for c in r] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())


def _short(cmd: str | None) -> str:
    return (cmd or "").rsplit(".", 1)[-1]


# -- jobs --------------------------------------------------------------------------------------
def job_rows(jobs: list[dict]) -> list[list]:
    rows = []
    for j in jobs:
        done, total = int(j.get("bytesdone") or 0), int(j.get("bytestotal") or 0)
        pending = j.get("jobstatus") == 0
        rows.append([j["jobid"], _short(j.get("cmd")), progress.STATUS.get(j.get("jobstatus"), "?"),
                     j.get("phase", "-") if pending else "-",
                     f"{progress.percent(done, total)}%" if pending else f"{j.get('jobprocstatus', 0)}%",
                     j.get("queueposition", "-"), j.get("created", "-")])
    return rows


def jobs_list(args, api) -> int:
    header = ["JOBID", "COMMAND", "STATUS", "PHASE", "PROGRESS", "QUEUE", "CREATED"]
    form = progress.mode(sys.stdout, args.json)
    last = None
    while True:
        jobs = api.list_all("listAsyncJobs", "asyncjobs")
        if args.status:
            jobs = [j for j in jobs if j.get("jobstatus") == STATUS_CODES[args.status]]
        key = [(j["jobid"], j.get("jobstatus"), j.get("phase"), j.get("bytesdone")) for j in jobs]
        if key != last:
            if form == "json":
                print(json.dumps(jobs), flush=True)
            else:
                if form == "tty" and last is not None:
                    sys.stdout.write("\x1b[H\x1b[2J")
                elif last is not None:
                    print()
                _print_table(job_rows(jobs), header)
                sys.stdout.flush()
            last = key
        if not args.watch or not any(j.get("jobstatus") == 0 for j in jobs):
            return 0
        time.sleep(args.interval)


def jobs_show(args, api) -> int:
    job = api.call("queryAsyncJobResult", jobid=args.jobid)
    if args.json:
        print(json.dumps(job))
        return 0
    for name in ("jobid", "cmd", "jobstatus", "jobresultcode", "jobprocstatus", "phase", "queueposition",
                 "bytesdone", "bytestotal", "rate", "eta", "statustext", "created", "cancelrequested"):
        if name in job:
            value = progress.STATUS.get(job[name], job[name]) if name == "jobstatus" else job[name]
            print(f"{name}: {value}")
    for v in job.get("volumes") or []:
        print(f"volume: {v.get('id')} {v.get('bytesDone')}/{v.get('bytesTotal')} {v.get('state')}")
    if "jobresult" in job:
        print("jobresult: " + json.dumps(job["jobresult"], indent=2))
    return 0


def watch(api, jobid: str, args, label: str = "", names: dict | None = None) -> int:
    """Poll the job until it ends, showing its progress; the exit code of its outcome."""
    view = progress.JobView(sys.stdout, progress.mode(sys.stdout, args.json), label, names)
    try:
        while True:
            job = api.call("queryAsyncJobResult", jobid=jobid)
            if job.get("jobstatus") != 0:
                break
            _name_volumes(api, job, view.names)
            view.show(job)
            time.sleep(args.interval)
    except KeyboardInterrupt:
        print(f"\nstopped watching; the job goes on (motion jobs watch {jobid})", file=sys.stderr)
        return 130
    view.done(job)
    if job.get("jobstatus") == 2:
        result = job.get("jobresult") or {}
        print(f"motion: job {jobid} failed ({result.get('errorcode', job.get('jobresultcode'))}): "
              f"{result.get('errortext', 'no error text')}", file=sys.stderr)
    return progress.outcome(job)


def _name_volumes(api, job: dict, names: dict) -> None:
    for v in job.get("volumes") or []:
        if v.get("id") and v["id"] not in names:
            try:
                found = api.call("listVolumes", id=v["id"]).get("volume", [])
            except Exception:  # a name is a nicety; the id will do
                found = []
            names[v["id"]] = found[0]["name"] if found else v["id"]


def jobs_watch(args, api) -> int:
    job = api.call("queryAsyncJobResult", jobid=args.jobid)
    return watch(api, args.jobid, args, _short(job.get("cmd")))


# -- migrate, pools, hosts, config -------------------------------------------------------------
def _accepted(args, api, jobid: str, label: str, names: dict) -> int:
    if args.wait:
        return watch(api, jobid, args, label, names)
    if args.json:
        print(json.dumps({"jobid": jobid}))
    elif sys.stdout.isatty():
        print(f"job {jobid} accepted: {label}\nfollow it with: motion jobs watch {jobid}")
    else:
        print(f"job={jobid}")
    return 0


def migrate_volume(args, api) -> int:
    volume, pool = resolve(api, "volume", args.volume), resolve(api, "pool", args.pool)
    body = api.call("migrateVolume", volumeid=volume["id"], storageid=pool["id"], livemigrate="true")
    return _accepted(args, api, body["jobid"], f"volume {volume['name']} -> pool {pool['name']}",
                     {volume["id"]: volume["name"]})


def migrate_vm(args, api) -> int:
    vm, host = resolve(api, "vm", args.vm), resolve(api, "host", args.host)
    volumes = api.list_all("listVolumes", "volume", virtualmachineid=vm["id"])
    params = {"virtualmachineid": vm["id"], "hostid": host["id"]}
    for index, pair in enumerate(args.map or []):
        ref, sep, pool_ref = pair.partition("=")
        if not sep or not ref or not pool_ref:
            raise UsageError(f"--map {pair!r}: give VOLUME=POOL")
        matches = [v for v in volumes if v["id"] == ref.lower() or v["name"] == ref]
        if len(matches) != 1:
            raise UsageError(f"--map {pair!r}: VM {vm['name']} has {'no' if not matches else 'several'} "
                             f"volume(s) named {ref!r}")
        params[f"migrateto[{index}].volume"] = matches[0]["id"]
        params[f"migrateto[{index}].pool"] = resolve(api, "pool", pool_ref)["id"]
    body = api.call("migrateVirtualMachineWithVolume", **params)
    return _accepted(args, api, body["jobid"], f"VM {vm['name']} -> host {host['name']}",
                     {v["id"]: v["name"] for v in volumes})


def pools_for(args, api) -> int:
    volume = resolve(api, "volume", args.volume)
    pools = api.list_all("findStoragePoolsForMigration", "storagepool", id=volume["id"])
    if args.json:
        print(json.dumps(pools))
        return 0
    _print_table([[p["name"], p["id"], "yes" if p.get("suitableformigration") else "no", p.get("scope", "-"),
                   p.get("tags") or "-", "; ".join(p.get("reasons") or []) or "-"] for p in pools],
                 ["POOL", "ID", "SUITABLE", "SCOPE", "TAGS", "WHY NOT"])
    return 0


def hosts_for(args, api) -> int:
    vm = resolve(api, "vm", args.vm)
    hosts = api.list_all("findHostsForMigration", "host", virtualmachineid=vm["id"])
    if args.json:
        print(json.dumps(hosts))
        return 0
    _print_table([[h["name"], h["id"], "yes" if h.get("suitableformigration") else "no",
                   "yes" if h.get("requiresStorageMotion") else "no", h.get("clustername", "-"),
                   "; ".join(h.get("reasons") or []) or "-"] for h in hosts],
                 ["HOST", "ID", "SUITABLE", "STORAGE MOTION", "CLUSTER", "WHY NOT"])
    return 0


def config(args, api) -> int:
    if args.action == "set":
        row = api.call("updateConfiguration", name=args.name, value=args.value)["configuration"]
        rows = [row]
    else:
        rows = api.list_all("listConfigurations", "configuration", **({"name": args.name} if args.name else {}))
        if args.name and not rows:
            raise UsageError(f"no configuration named {args.name!r}")
    if args.json:
        print(json.dumps(rows[0] if args.name else rows))
    else:
        for row in rows:
            default = row.get("defaultvalue")
            print(f"{row['name']} = {row['value']}" + (f"  (default {default})" if default not in (None, row["value"])
                                                      else ""))
    return 0


ACTIONS = {("jobs", "list"): jobs_list, ("jobs", "show"): jobs_show, ("jobs", "watch"): jobs_watch,
           ("migrate", "volume"): migrate_volume, ("migrate", "vm"): migrate_vm,
           ("pools", "for"): pools_for, ("hosts", "for"): hosts_for,
           ("config", "get"): config, ("config", "set"): config}


def run(args, settings=None) -> int:
    """Run one client subcommand; map what can go wrong to the exit codes of the docstring."""
    from .client import ApiError

    try:
        api = client(args)
        return ACTIONS[(args.command, args.action)](args, api)
    except (UsageError, ConfigMissing) as exc:
        print(f"motion {args.command}: {exc}", file=sys.stderr)
        return 2
    except ApiError as exc:
        where = "" if exc.code == 0 else f" ({exc.code})"
        print(f"motion {args.command}: refused{where}: {exc.text}" if exc.code else
              f"motion {args.command}: {exc.text}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
