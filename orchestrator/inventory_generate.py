"""Synthetic inventories of any size, for tests and benchmarks.

``generate`` builds a valid inventory dict (the format of ``docs/inventory.md``) from a few
counts. The same arguments and seed always give the same inventory. It mixes what the storage
motion rules care about: shared and local volumes, tagged and untagged pools and disk offerings,
hosts with and without host tags, and service offerings that need them. Every VM runs; every
volume fits the rules ``inventory.validate`` checks. It is kept apart from ``inventory`` only to
keep that module short; ``inventory.generate`` is the same function.
"""
from __future__ import annotations

import random

STORAGE_TAGS = ("gold", "silver", "bronze")
ZONE_TAG = "bulk"
HOST_TAG = "fast"
LOCAL_TAG = "ssd"
ACCOUNTS = ("tenant-1", "tenant-2", "tenant-3")


def _offerings() -> tuple[list, list]:
    """Disk offerings for every tag and both storage kinds, and four service offerings."""
    disk = [dict(name="gen-shared", storage="shared")]
    disk += [dict(name=f"gen-shared-{tag}", storage="shared", tags=[tag])
             for tag in (*STORAGE_TAGS, ZONE_TAG)]
    disk += [dict(name="gen-local", storage="local"),
             dict(name=f"gen-local-{LOCAL_TAG}", storage="local", tags=[LOCAL_TAG])]
    service = []
    for storage in ("shared", "local"):
        base = dict(cpu=dict(number=1, speed=500), memory="512MiB")
        service.append(dict(name=f"gen-{storage}", **base, storage=storage))
        service.append(dict(name=f"gen-{storage}-{HOST_TAG}", **base, host_tags=[HOST_TAG],
                            storage=storage))
    return disk, service


def _host(name: str, rng: random.Random) -> dict:
    """A Hyper-V 2012 R2 host with one local pool; about half are fast, half have SSDs."""
    host = dict(name=name, hypervisor_version="6.3", cpu=dict(number=16, speed=2400),
                memory="64GiB")
    if rng.random() < 0.5:
        host["host_tags"] = [HOST_TAG]
    local = dict(name=f"{name}-local", capacity="500GiB")
    if rng.random() < 0.5:
        local["tags"] = [LOCAL_TAG]
    host["local_pools"] = [local]
    return host


def _volume(name: str, kind: str, host: dict, shared_pools: list, local: bool,
            size: str, rng: random.Random) -> dict:
    """A volume on the host's local pool or on one of the shared pools it can reach."""
    if local:
        pool = host["local_pools"][0]
        tagged = "tags" in pool and rng.random() < 0.5
        offering = f"gen-local-{LOCAL_TAG}" if tagged else "gen-local"
    else:
        pool = rng.choice(shared_pools)
        tagged = rng.random() < 0.5
        offering = f"gen-shared-{pool['tags'][0]}" if tagged else "gen-shared"
    return dict(name=name, type=kind, pool=pool["name"], size=size, disk_offering=offering)


def _vm(name: str, host: dict, shared_pools: list, data_volumes: int, size: str,
        rng: random.Random) -> dict:
    """A running VM whose ROOT and DATA volumes are each local or shared at random."""
    root_local = not shared_pools or rng.random() < 0.3
    fast = HOST_TAG in host.get("host_tags", ()) and rng.random() < 0.5
    offering = f"gen-{'local' if root_local else 'shared'}{'-' + HOST_TAG if fast else ''}"
    volumes = [_volume(f"{name}-root", "ROOT", host, shared_pools, root_local, size, rng)]
    for index in range(1, data_volumes + 1):
        local = not shared_pools or rng.random() < 0.3
        volumes.append(_volume(f"{name}-data-{index}", "DATADISK", host, shared_pools, local,
                               size, rng))
    vm = dict(name=name, host=host["name"], service_offering=offering, state="Running")
    account = rng.randrange(len(ACCOUNTS) + 1)
    if account < len(ACCOUNTS):  # the last choice leaves the VM with the root admin
        vm["account"] = ACCOUNTS[account]
    vm["volumes"] = volumes
    return vm


def _cluster(prefix: str, hosts: int, shared_pools: int, rng: random.Random) -> dict:
    pools = [dict(name=f"{prefix}-pool-{k}", tags=[STORAGE_TAGS[(k - 1) % len(STORAGE_TAGS)]],
                  capacity="10TiB") for k in range(1, shared_pools + 1)]
    return dict(name=prefix, hypervisor="Hyperv",
                hosts=[_host(f"{prefix}-host-{h}", rng) for h in range(1, hosts + 1)],
                pools=pools)


def generate(zones: int = 1, pods_per_zone: int = 1, clusters_per_pod: int = 2,
             hosts_per_cluster: int = 2, shared_pools_per_cluster: int = 2, zone_pools: int = 0,
             vms_per_host: int = 1, data_volumes_per_vm: int = 1, volume_size="4MiB",
             seed: int = 0) -> dict:
    """A valid synthetic inventory; the same arguments always give the same inventory.

    Names encode the position, so they are unique and readable: cluster ``c1-1-2`` is the
    second cluster of pod 1 of zone 1, host ``c1-1-2-host-3`` its third host, pool
    ``c1-1-2-pool-1`` its first shared pool, ``zone-1-pool-1`` a zone-wide pool.
    """
    counts = dict(zones=zones, pods_per_zone=pods_per_zone, clusters_per_pod=clusters_per_pod,
                  hosts_per_cluster=hosts_per_cluster,
                  shared_pools_per_cluster=shared_pools_per_cluster, zone_pools=zone_pools,
                  vms_per_host=vms_per_host, data_volumes_per_vm=data_volumes_per_vm)
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
    rng = random.Random(seed)
    disk, service = _offerings()
    zone_list, vms = [], []
    for z in range(1, zones + 1):
        shared_zone = [dict(name=f"zone-{z}-pool-{k}", tags=[ZONE_TAG], capacity="100TiB")
                       for k in range(1, zone_pools + 1)]
        pods = []
        for p in range(1, pods_per_zone + 1):
            clusters = [_cluster(f"c{z}-{p}-{c}", hosts_per_cluster, shared_pools_per_cluster, rng)
                        for c in range(1, clusters_per_pod + 1)]
            for cluster in clusters:
                reachable = cluster["pools"] + shared_zone
                for host in cluster["hosts"]:
                    vms += [_vm(f"{host['name']}-vm-{v}", host, reachable, data_volumes_per_vm,
                                volume_size, rng) for v in range(1, vms_per_host + 1)]
            pods.append(dict(name=f"pod-{p}", clusters=clusters))
        zone = dict(name=f"zone-{z}", pods=pods)
        if shared_zone:
            zone["pools"] = shared_zone
        zone_list.append(zone)
    return dict(zones=zone_list, disk_offerings=disk, service_offerings=service,
                accounts=[dict(name=name, role="user") for name in ACCOUNTS], vms=vms)
