"""The end checks of a chaos run: the invariants of DESIGN.md section 5, each a list of violations.

- every job is terminal (``async_jobs.status`` <> 0, read-only SQL);
- every volume is ``Ready`` and its recorded pool (listVolumes ``storageid`` -> listStoragePools
  ``path``) holds a file whose sha256 equals the agent's truth taken before the run, the agent
  reports it there and only there, and no other pool directory holds a copy of it;
- no partial copy (``*.partial``) or half-created file (``.*.creating``) in any pool directory;
- every VM is ``Running`` and registered on the agent of its recorded host, and on no other;
- no host ran more storage migrations at once than its limit: the agents' ``peakStorageMigrations``
  (the most seen before each agent kill and at the end; agents run with a limit of their own far
  above the orchestrator's, so the peak is what the orchestrator sent) and, from the database,
  the most jobs of a host whose dispatched..completed intervals overlap.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import requests

from bench.chaos_stack import plain


def sql(url: str, query: str, *params) -> list[tuple]:
    """Rows of one read-only query (a transaction of its own)."""
    import psycopg

    with psycopg.connect(plain(url), connect_timeout=10) as conn:
        conn.read_only = True
        return conn.execute(query, params or None).fetchall()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Peaks:
    """The highest ``peakStorageMigrations`` seen per host across agent restarts."""

    def __init__(self):
        self.seen: dict[str, int] = {}

    def observe(self, stack, hosts) -> None:
        for host in hosts:
            try:
                peak = requests.get(stack.host_base(host), timeout=5).json()["peakStorageMigrations"]
            except (requests.RequestException, ValueError, KeyError):
                continue  # an agent down now: its peak was read before it was killed
            self.seen[host] = max(self.seen.get(host, 0), int(peak))


def truth(stack, api) -> dict[str, str]:
    """Volume id -> sha256 of its data, as the agent of its VM's host reports it before the run."""
    out = {}
    hosts = {vm["id"]: vm["hostname"] for vm in api.listVirtualMachines(fetch_list=True)}
    for vol in api.listVolumes(fetch_list=True):
        where = requests.get(f"{stack.host_base(hosts[vol['virtualmachineid']])}/volumes/{vol['id']}",
                             params={"checksum": 1}, timeout=60).json()
        [location] = where["locations"]
        out[vol["id"]] = location["sha256"]
    return out


def check_jobs(url: str) -> list[str]:
    rows = sql(url, "SELECT uuid, command, phase, lease_owner, attempt FROM async_jobs WHERE status = 0 ORDER BY id")
    return [f"job {u} ({cmd}) never ended: phase {phase}, lease {owner}, attempt {attempt}"
            for u, cmd, phase, owner, attempt in rows]


def check_allocations(url: str) -> list[str]:
    """Every pool's allocated_bytes (kept by triggers) equals the sizes of the volumes on it."""
    rows = sql(url, "SELECT p.name, p.allocated_bytes, COALESCE(SUM(v.size), 0) FROM storage_pools p "
                    "LEFT JOIN volumes v ON v.pool_id = p.id GROUP BY p.id, p.name, p.allocated_bytes "
                    "HAVING p.allocated_bytes <> COALESCE(SUM(v.size), 0) ORDER BY p.name")
    return [f"pool {name}: allocated_bytes {recorded}, but its volumes take {actual} bytes"
            for name, recorded, actual in rows]


def pool_files(root: Path) -> list[Path]:
    """Every file in a pool directory (the agent's own state under .agent excluded)."""
    return [p for p in root.rglob("*") if p.is_file() and ".agent" not in p.relative_to(root).parts]


def check_volumes(stack, api, sums: dict[str, str]) -> dict[str, list[str]]:
    root = stack.agent_root
    pools = {p["id"]: p for p in api.listStoragePools(fetch_list=True)}
    hosts = {vm["id"]: vm.get("hostname") for vm in api.listVirtualMachines(fetch_list=True)}
    files = pool_files(root)
    by_name = defaultdict(list)
    for path in files:
        by_name[path.name].append(path)
    partial = [f"partial copy left: {p.relative_to(root)}" for p in files
               if p.name.endswith(".partial") or p.name.endswith(".creating")]
    states, data = [], []
    for vol in api.listVolumes(fetch_list=True):
        name = f"volume {vol['name']} ({vol['id']})"
        if vol["state"] != "Ready":
            states.append(f"{name} left {vol['state']}")
        recorded = root / pools[vol["storageid"]]["path"].lstrip("/") / vol["path"]
        if not recorded.is_file():
            data.append(f"{name} recorded on pool {vol['storage']} but {recorded.relative_to(root)} does not exist")
        elif sha256(recorded) != sums[vol["id"]]:
            data.append(f"{name}: the file on its recorded pool {vol['storage']} does not hold its data (sha256)")
        for other in by_name.get(vol["path"], []):
            if other != recorded:
                data.append(f"{name}: a stray copy {other.relative_to(root)} besides the recorded one")
        data += _agent_view(stack, hosts.get(vol.get("virtualmachineid")), vol, name, sums[vol["id"]])
    return {"no volume left Migrating": states, "every volume's data complete where recorded, only there": data,
            "no partial copies in any pool": partial}


def _agent_view(stack, host: str | None, vol: dict, name: str, digest: str) -> list[str]:
    if host is None:
        return [f"{name}: its VM has no host"]
    try:
        where = requests.get(f"{stack.host_base(host)}/volumes/{vol['id']}", params={"checksum": 1}, timeout=60)
    except requests.RequestException as exc:
        return [f"{name}: the agent of host {host} did not answer: {exc}"]
    if where.status_code != 200:
        return [f"{name}: the agent of host {host} answers {where.status_code} for it"]
    places = [(loc["pool"], loc.get("sha256")) for loc in where.json()["locations"]]
    if places != [(vol["storageid"], digest)]:
        return [f"{name}: recorded on pool {vol['storage']} ({vol['storageid']}) but the agent of host {host} "
                f"reports {places or 'no copy'}"]
    return []


def check_vms(stack, api) -> dict[str, list[str]]:
    registered = defaultdict(list)
    for host in sorted(h for hosts in stack.agent_hosts.values() for h in hosts):
        for vm in requests.get(f"{stack.host_base(host)}/vms", timeout=10).json()["vms"]:
            registered[vm["name"]].append(host)
    states, bad = [], []
    for vm in api.listVirtualMachines(fetch_list=True):
        if vm["state"] != "Running":
            states.append(f"VM {vm['name']} left {vm['state']}")
        if registered.get(vm["instancename"], []) != [vm.get("hostname")]:
            bad.append(f"VM {vm['name']} recorded on host {vm.get('hostname')} but registered on agents of "
                       f"{registered.get(vm['instancename'], []) or 'no host'}")
    return {"no VM left Migrating": states, "every VM runs where recorded, only there": bad}


def host_limits(url: str) -> dict[str, int]:
    return dict(sql(url, "SELECT h.name, COALESCE(h.max_storage_migrations, c.max_storage_migrations, 2) "
                         "FROM hosts h LEFT JOIN hypervisor_capabilities c ON c.hypervisor_type = h.hypervisor "
                         "AND c.hypervisor_version = h.hypervisor_version"))


def interval_peaks(url: str) -> dict[str, int]:
    """Per host, the most jobs dispatched at once according to their recorded times."""
    rows = sql(url, "SELECT h.name, j.dispatched_at, j.completed_at FROM async_jobs j JOIN hosts h "
                    "ON h.id = j.host_id OR h.id = j.dest_host_id WHERE j.dispatched_at IS NOT NULL")
    marks = defaultdict(list)
    for host, start, end in rows:
        marks[host].append((start, 1))
        if end is not None:
            marks[host].append((end, -1))
    peaks = {}
    for host, points in marks.items():
        level = peak = 0
        for _at, step in sorted(points):  # at equal times the end (-1) sorts first
            level += step
            peak = max(peak, level)
        peaks[host] = peak
    return peaks


def check_limits(stack, peaks: Peaks) -> tuple[list[str], dict]:
    peaks.observe(stack, [h for hosts in stack.agent_hosts.values() for h in hosts])
    limits, recorded = host_limits(stack.database_url), interval_peaks(stack.database_url)
    bad = [f"host {h}: the agent saw {p} storage migrations at once, limit {limits[h]}"
           for h, p in sorted(peaks.seen.items()) if p > limits[h]]
    bad += [f"host {h}: {p} jobs were dispatched at once by their recorded times, limit {limits[h]}"
            for h, p in sorted(recorded.items()) if p > limits[h]]
    return bad, {"agent": dict(sorted(peaks.seen.items())), "jobs": dict(sorted(recorded.items())),
                 "limit": max(limits.values())}


def recovery_figures(url: str, affected: dict[str, set[str]]) -> dict:
    """Per kind of event: (jobs it hit, how many of them ended); jobs claimed more than once;
    repairs of the reconciler."""
    ended = {u for (u,) in sql(url, "SELECT uuid FROM async_jobs WHERE status <> 0")}
    out = {kind: (len(jobs), len(jobs & ended)) for kind, jobs in affected.items()}
    stranded = set().union(*(jobs for kind, jobs in affected.items() if kind != "pool-outage"))
    out["stranded"] = (len(stranded), len(stranded & ended))
    out["claimed again"] = sql(url, "SELECT count(*) FROM async_jobs WHERE attempt > 1")[0][0]
    out["repairs"] = sql(url, "SELECT count(*) FROM events WHERE type LIKE '%.RECONCILE'")[0][0]
    return out


def check_repairs(url: str) -> list[str]:
    """Every repair of the reconcilers (orphans, agents' truth): nothing in a chaos run moves data
    behind the database's back, so a repair is either a product bug or a false repair."""
    return [f"reconciler: {text}" for (text,) in
            sql(url, "SELECT description FROM events WHERE type LIKE '%.RECONCILE' ORDER BY id")]


def worker_restarts(work: Path) -> list[str]:
    """The ``motion worker`` supervisor's lines about a Celery worker that exited by itself, each
    with the last ERROR/CRITICAL line of that worker before it (the reason), shortened."""
    found = []
    for log in sorted(work.glob("worker*.log")):
        last = ""
        for line in log.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line) if line.startswith("{") else {"msg": line}
            except ValueError:
                continue
            msg = str(entry.get("msg", ""))
            if entry.get("level") in ("ERROR", "CRITICAL"):
                last = _kind(f"{entry.get('logger')}: {msg}")
            if "exited by itself" in msg:
                status = re.search(r"with status (\d+)", msg)
                found.append(f"status {status[1] if status else '?'} after: {last or 'no error logged'}"[:200])
                last = ""
    return found


def log_errors(work: Path) -> Counter:
    """ERROR and CRITICAL entries of the orchestrator's logs (workers, API, beat), by kind.

    Some are expected under chaos (a publish that failed while Redis was down); the report lists
    them all so that the unexpected ones (a deadlock, an internal error) stand out.
    """
    found = Counter()
    for log in sorted(work.glob("worker*.log")) + [work / "api.log", work / "beat.log"]:
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        structured = any(line.startswith("{") for line in lines)
        for line in lines:
            if structured:
                try:
                    entry = json.loads(line) if line.startswith("{") else {}
                except ValueError:
                    continue
                level, text = entry.get("level"), f"{entry.get('logger')}: {entry.get('msg')}"
            else:
                match = re.search(r" (ERROR|CRITICAL) (\S+): (.*)", line)
                level, text = (match[1], f"{match[2]}: {match[3]}") if match else (None, "")
            if level in ("ERROR", "CRITICAL"):
                found[f"{log.stem.rstrip('0123456789')}: {_kind(text)}"] += 1
    return found


def _kind(text: str) -> str:
    if "DeadlockDetected" in text or "deadlock detected" in text:
        return text.split(":")[0] + ": PostgreSQL deadlock detected"
    text = re.sub(r"\[[0-9a-f-]{36}\]|[0-9a-f]{8}-[0-9a-f-]{27}", "<id>", text)
    return re.sub(r"\d+", "N", " ".join(text.split()))[:160]
