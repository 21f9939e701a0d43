"""Placement at scale: latency of findStoragePoolsForMigration and findHostsForMigration through
the API (gunicorn, one worker, real HTTP) on a large synthetic inventory in PostgreSQL.

    python bench/placement.py                    # 10,000 hosts / 50,000 pools / 100,000 volumes
    python bench/placement.py --double           # ... and again with twice the zones
    python bench/placement.py --zones 1 --clusters 2 --hosts 2 --pools 2 --samples 5   # tiny

The inventory comes from ``motion inventory generate``'s generator: ``--zones`` zones of
``--clusters`` clusters of ``--hosts`` hosts, each host with a local pool, each cluster with
``--pools`` shared pools, two VMs per host with a ROOT and four DATA volumes. A VM's candidate
set is its zone, so ``--double`` (twice the zones, same zone size) shows whether latency follows
the candidate set or the whole inventory; both inventories are then built first and their
samples timed in turn, so that changes in the machine's load weigh on both alike.
findHostsForMigration is asked for its first page of 500, as ``cs`` asks. Target: p50 <= 50 ms
for each. Prints one report line per inventory.
"""
from __future__ import annotations

import os
import sys

# Run as a script, this file's directory comes first on sys.path: put the repository root there
# instead, so that the project and the bench helpers import as packages (bench._common, ...).
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import random
import secrets
import signal
import socket
import statistics
import subprocess  # noqa: E402
import time
from pathlib import Path

import psycopg
from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[1]

import migrations  # noqa: E402
from motion.client import Client  # noqa: E402
from orchestrator import accounts, inventory, models  # noqa: E402
from orchestrator.db import Database  # noqa: E402

ADMIN_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def create_database() -> str:
    name = f"motion_bench_placement_{secrets.token_hex(4)}"
    with psycopg.connect(plain(ADMIN_URL), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str) -> None:
    with psycopg.connect(plain(ADMIN_URL), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def build(url: str, args, zones: int) -> tuple[dict, dict]:
    migrations.upgrade(url)
    data = inventory.generate(zones=zones, clusters_per_pod=args.clusters, hosts_per_cluster=args.hosts,
                              shared_pools_per_cluster=args.pools, vms_per_host=2, data_volumes_per_vm=4,
                              volume_size="1MiB", seed=args.seed)
    db = Database(url)
    with db.uow() as uow:
        counts = inventory.load(uow.session, data)
        key = accounts.create_key(uow.session, "admin", "admin")
        uow.commit()
    with psycopg.connect(plain(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    db.dispose()
    return counts, key


def samples(url: str, n: int, seed: int) -> tuple[list[str], list[str]]:
    """Running VMs, and shared volumes of running VMs, picked at random."""
    db = Database(url)
    with db.uow() as uow:
        s = uow.session
        vms = list(s.scalars(select(models.VirtualMachine.uuid).where(models.VirtualMachine.state == "Running")))
        vols = list(s.scalars(select(models.Volume.uuid).join(models.StoragePool,
                                                             models.StoragePool.id == models.Volume.pool_id)
                              .where(models.StoragePool.is_local.is_(False))))
    db.dispose()
    rng = random.Random(seed)
    return rng.sample(vms, min(n, len(vms))), rng.sample(vols, min(n, len(vols)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(url: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "MOTION_DATABASE_URL": url, "MOTION_BROKER_URL": "memory://localhost/"}
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}",
                             "--log-level", "warning", "api:create_app()"], cwd=ROOT, env=env)
    endpoint = f"http://127.0.0.1:{port}/client/api"
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, endpoint
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the API did not start")


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class Inventory:
    """One generated inventory in its own database, served by its own API process."""

    def __init__(self, args, zones: int):
        self.zones, self.args = zones, args
        self.url = create_database()
        started = time.perf_counter()
        self.counts, key = build(self.url, args, zones)
        self.load_s = time.perf_counter() - started
        self.vms, self.vols = samples(self.url, args.samples, args.seed)
        self.proc, endpoint = serve(self.url)
        self.api = Client(endpoint, key["apikey"], key["secretkey"])
        self.api.call("listZones")  # warm up the worker's connections
        self.pools_ms: list[float] = []
        self.hosts_ms: list[float] = []

    def pools(self, i: int) -> None:
        self.pools_ms.append(timed(lambda: self.api.call("findStoragePoolsForMigration", id=self.vols[i])))

    def hosts(self, i: int) -> None:
        self.hosts_ms.append(timed(lambda: self.api.call("findHostsForMigration", virtualmachineid=self.vms[i],
                                                         page=1, pagesize=500)))

    def close(self) -> None:
        if getattr(self, "proc", None) is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        if not self.args.keep:
            drop_database(self.url)

    def report(self) -> dict:
        c = self.counts
        report = {"zones": self.zones, "hosts": c["hosts"], "pools": c["pools"], "volumes": c["volumes"],
                  "hosts_per_zone": c["hosts"] // self.zones, "load_s": self.load_s,
                  "pools_p50": statistics.median(self.pools_ms), "pools_p95": percentile(self.pools_ms, 0.95),
                  "hosts_p50": statistics.median(self.hosts_ms), "hosts_p95": percentile(self.hosts_ms, 0.95)}
        print(f"placement zones={self.zones} hosts={report['hosts']} pools={report['pools']} "
              f"volumes={report['volumes']} hosts_per_zone={report['hosts_per_zone']} "
              f"samples={len(self.vols)}/{len(self.vms)} | "
              f"findStoragePoolsForMigration p50={report['pools_p50']:.1f}ms p95={report['pools_p95']:.1f}ms | "
              f"findHostsForMigration p50={report['hosts_p50']:.1f}ms p95={report['hosts_p95']:.1f}ms | "
              f"target p50<=50ms: {'met' if max(report['pools_p50'], report['hosts_p50']) <= 50 else 'MISSED'} "
              f"(inventory loaded in {self.load_s:.0f}s)", flush=True)
        return report


def measure(args, sizes: list[int]) -> list[dict]:
    """Build one inventory per size (zones), then time the samples of all of them in turn - the
    first sample on each, the second on each, and so on - so that a change in the machine's load
    during the run weighs on every inventory alike."""
    inventories: list[Inventory] = []
    try:
        for zones in sizes:
            inventories.append(Inventory(args, zones))
        print(f"load average before timing: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        n_vols = min(len(i.vols) for i in inventories)
        n_vms = min(len(i.vms) for i in inventories)
        for k in range(n_vols):
            for inventory_ in inventories:
                inventory_.pools(k)
        for k in range(n_vms):
            for inventory_ in inventories:
                inventory_.hosts(k)
        print(f"load average after timing: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        return [inventory_.report() for inventory_ in inventories]
    finally:
        for inventory_ in inventories:
            inventory_.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zones", type=int, default=10)
    p.add_argument("--clusters", type=int, default=100, help="clusters per zone")
    p.add_argument("--hosts", type=int, default=10, help="hosts per cluster")
    p.add_argument("--pools", type=int, default=40, help="shared pools per cluster")
    p.add_argument("--samples", type=int, default=40)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--double", action="store_true", help="measure again with twice the zones")
    p.add_argument("--keep", action="store_true", help="keep the databases")
    args = p.parse_args(argv)
    reports = measure(args, [args.zones, args.zones * 2] if args.double else [args.zones])
    if args.double:
        first, second = reports
        print(f"placement doubling: inventory x2 -> findStoragePoolsForMigration p50 x"
              f"{second['pools_p50'] / first['pools_p50']:.2f}, findHostsForMigration p50 x"
              f"{second['hosts_p50'] / first['hosts_p50']:.2f} (same zone size)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
