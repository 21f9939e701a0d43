"""Which pools suit a migration, and why not.

The rules are plain functions over plain values so they can be tested without a database; the
queries that feed them live with their callers. Each rule returns ``None`` when it is satisfied
and otherwise a sentence saying why not, which becomes an error text or a listed reason.
"""
from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

# The seed spec's matrices: (source is local, destination is local) -> allowed.
LIVE_VOLUME_MATRIX = {(False, False): True, (False, True): False, (True, False): False, (True, True): False}
VM_WITH_VOLUME_MATRIX = {(False, False): True, (False, True): False, (True, False): False, (True, True): True}


@lru_cache(maxsize=65536)
def split_tags(text: str | None) -> frozenset[str]:
    """The tags of a comma-separated tag string (cached: the same few strings recur everywhere)."""
    return frozenset(t.strip() for t in (text or "").split(",") if t.strip())


def missing_tags(required: str | None, offered: str | None) -> set[str]:
    """Storage (or host) tags the offering asks for that the pool (or host) lacks."""
    return split_tags(required) - split_tags(offered)


class PoolFacts(NamedTuple):
    """What the rules need to know about a pool (a named tuple: a zone's thousands are built per
    request, and tuples build several times faster than dataclasses)."""

    name: str
    is_local: bool
    scope: str  # HOST / CLUSTER / ZONE
    state: str
    zone_id: int
    cluster_id: int | None
    host_id: int | None
    tags: str
    capacity: int
    allocated: int
    id: int = 0


def reaches(host_id: int, host_zone_id: int, host_cluster_id: int, pool: PoolFacts) -> bool:
    """Can this host use this pool? Local pools: only their own host; cluster pools: the hosts of
    that cluster; zone-wide pools: every host of the zone."""
    if pool.scope == "HOST":
        return pool.host_id == host_id
    if pool.scope == "CLUSTER":
        return pool.cluster_id == host_cluster_id
    return pool.zone_id == host_zone_id


def local_shared_refusal(src_local: bool, dest_local: bool) -> str | None:
    """Scenario 1's table: only shared -> shared is a live volume migration."""
    if LIVE_VOLUME_MATRIX[(src_local, dest_local)]:
        return None
    if src_local:
        return "Migration of volume from local storage pool is not supported"
    return "Migration of volume from shared to local storage pool is not supported"


def reach_refusal(dest: PoolFacts, host_zone_id: int, host_cluster_id: int) -> str | None:
    """A live migration keeps the VM on its host, so the host must reach the destination pool."""
    if dest.scope == "CLUSTER" and dest.cluster_id != host_cluster_id:
        return ("Cannot migrate a volume of a virtual machine to a storage pool in a different "
                "cluster")
    if dest.scope == "ZONE" and dest.zone_id != host_zone_id:
        return "Cannot migrate a volume to a storage pool in a different zone"
    return None


def state_refusal(dest: PoolFacts) -> str | None:
    if dest.state == "Maintenance":
        return f"pool {dest.name} is in maintenance"
    if dest.state != "Up":
        return f"pool {dest.name} is not Up (state {dest.state})"
    return None


def human_size(size: int) -> str:
    """Bytes in the largest binary unit that keeps a readable number, e.g. 20 GiB, 1.5 MiB."""
    for unit, factor in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(size) >= factor:
            return f"{size / factor:.4g} {unit}"
    return f"{size} B"


def _listed(tags: set[str]) -> str:
    return "[" + ", ".join(sorted(tags)) + "]"


def tag_refusal(dest: PoolFacts, offering_tags: str | None, offering_name: str) -> str | None:
    if missing_tags(offering_tags, dest.tags):
        return (f"storage tags do not match: volume needs {_listed(split_tags(offering_tags))} "
                f"(disk offering {offering_name}), pool {dest.name} has {_listed(split_tags(dest.tags))}")
    return None


def free_bytes(dest: PoolFacts, overprovisioning: float) -> int:
    """Room = capacity x overprovisioning factor - allocated."""
    return int(dest.capacity * overprovisioning) - dest.allocated


def capacity_refusal(dest: PoolFacts, size: int, overprovisioning: float) -> str | None:
    """The moving volume must fit in the room left on the destination."""
    room = free_bytes(dest, overprovisioning)
    if size > room:
        return (f"not enough capacity: needs {human_size(size)}, {human_size(max(room, 0))} free "
                f"on pool {dest.name} (capacity {human_size(dest.capacity)} x {overprovisioning:g} "
                f"- allocated {human_size(dest.allocated)})")
    return None


def volume_pool_refusals(src_local: bool, dest: PoolFacts, host_zone_id: int, host_cluster_id: int,
                         offering_tags: str | None, offering_name: str, size: int,
                         overprovisioning: float) -> list[str]:
    """Every reason why ``dest`` cannot take this volume in a live migration (empty: suitable)."""
    checks = [
        local_shared_refusal(src_local, dest.is_local),
        reach_refusal(dest, host_zone_id, host_cluster_id),
        state_refusal(dest),
        tag_refusal(dest, offering_tags, offering_name),
        capacity_refusal(dest, size, overprovisioning),
    ]
    return [c for c in checks if c]


# -- a VM and its volumes on another host ----------------------------------------------------

class HostFacts(NamedTuple):
    id: int
    name: str
    zone_id: int
    cluster_id: int
    status: str
    resource_state: str
    hypervisor: str
    version: str
    cpu_total: int  # MHz
    memory: int  # bytes
    host_tags: str
    cpu_allocated: int = 0
    memory_allocated: int = 0


class VolumeFacts(NamedTuple):
    id: int
    name: str
    size: int
    pool: PoolFacts
    offering_tags: str
    offering_name: str


def host_reaches(host: HostFacts, pool: PoolFacts) -> bool:
    return reaches(host.id, host.zone_id, host.cluster_id, pool)


def pool_refusals_for(volume: VolumeFacts, pool: PoolFacts, overprovisioning: float) -> list[str]:
    """State, tags and room of a destination pool for this volume (reachability checked apart)."""
    checks = [state_refusal(pool), tag_refusal(pool, volume.offering_tags, volume.offering_name),
              capacity_refusal(pool, volume.size, overprovisioning)]
    return [c for c in checks if c]


def with_planned(pool: PoolFacts, planned: dict[int, int]) -> PoolFacts:
    """The pool as it will be once the volumes already placed on it in this plan arrive."""
    extra = planned.get(pool.id, 0)
    return pool if not extra else pool._replace(allocated=pool.allocated + extra)


def choose_pool(volume: VolumeFacts, host: HostFacts, pools: list[PoolFacts], planned: dict[int, int],
                overprovisioning: float) -> tuple[PoolFacts | None, str | None]:
    """Where this volume goes if the VM moves to ``host`` and nobody says where.

    ``pools`` are the pools the host reaches. The volume stays when the host reaches its pool;
    otherwise it goes to a pool of the same kind (local stays local, shared stays shared) that can
    take it (Up, tagged, room - the tests of ``pool_refusals_for``, counting the volumes already
    ``planned`` onto it) and has the most room left; ties by name. Returns (pool, None) or
    (None, the reason there is no place).
    """
    # A tight loop: this runs for every host of a zone and every volume that may move.
    current = volume.pool
    if reaches(host.id, host.zone_id, host.cluster_id, current):
        return current, None
    local, need, size = current.is_local, split_tags(volume.offering_tags), volume.size
    best, best_free = None, 0
    for pool in pools:
        if pool.is_local != local or pool.state != "Up":
            continue
        free = int(pool.capacity * overprovisioning) - pool.allocated
        if planned:
            free -= planned.get(pool.id, 0)
        if free < size or (need and not need <= split_tags(pool.tags)):
            continue
        if best is None or free > best_free or (free == best_free and pool.name < best.name):
            best, best_free = pool, free
    if best is not None:
        return best, None
    kind = "local" if local else "shared"
    why_not = [f"{p.name}: {pool_refusals_for(volume, with_planned(p, planned), overprovisioning)[0]}"
               for p in pools if p.is_local == local][:4]
    # A shared volume's options depend only on the host's cluster and zone, so the text names no
    # host (the same verdict serves every host of a cluster); a local one's are the host's own.
    where = f"of host {host.name}" if local else "the host can reach"
    detail = ("; ".join(why_not[:3]) + ("; ..." if len(why_not) > 3 else "")) if why_not else \
        f"there is no {kind} pool {where}"
    return None, f"volume {volume.name}: no {kind} pool {where} can take it ({detail})"


def pair_refusals(volume: VolumeFacts, pool: PoolFacts, host: HostFacts, planned: dict[int, int],
                  overprovisioning: float) -> list[str]:
    """Why an admin's ``volume -> pool`` choice cannot be used when the VM moves to ``host``."""
    pair = f"volume {volume.name} -> pool {pool.name}"
    reasons = []
    if not VM_WITH_VOLUME_MATRIX[(volume.pool.is_local, pool.is_local)]:
        src, dst = ("local", "shared") if volume.pool.is_local else ("shared", "local")
        reasons.append(f"{pair}: a volume on {src} storage cannot move to {dst} storage "
                       f"(its disk offering decides where it may live)")
    if not host_reaches(host, pool):
        reasons.append(f"{pair}: pool {pool.name} is not reachable from host {host.name}")
    if pool.id != volume.pool.id:
        reasons += [f"{pair}: {r}" for r in pool_refusals_for(volume, with_planned(pool, planned),
                                                               overprovisioning)]
    return reasons


def host_refusals(source: HostFacts, host: HostFacts, need_cpu: int, need_memory: int,
                  need_tags: str, requires_motion: bool, motion_supported: bool) -> tuple[list[str], bool]:
    """Why the VM cannot run on ``host``; and whether the host has the CPU and memory for it."""
    reasons = []
    if host.status != "Up":
        reasons.append(f"host {host.name} is not Up (status {host.status})")
    if host.resource_state != "Enabled":
        reasons.append(f"host {host.name} is not Enabled (state {host.resource_state})")
    if (host.hypervisor, host.version) != (source.hypervisor, source.version):
        reasons.append(f"hypervisor {host.hypervisor} {host.version} differs from the source host's "
                       f"{source.hypervisor} {source.version}")
    if requires_motion and not motion_supported:
        reasons.append(f"storage motion is not supported on {source.hypervisor} {source.version}")
    missing = missing_tags(need_tags, host.host_tags)
    if missing:
        reasons.append(f"host tags do not match: service offering needs {_listed(split_tags(need_tags))}, "
                       f"host {host.name} has {_listed(split_tags(host.host_tags))}")
    cpu_free = host.cpu_total - host.cpu_allocated
    mem_free = host.memory - host.memory_allocated
    enough = need_cpu <= cpu_free and need_memory <= mem_free
    if need_cpu > cpu_free:
        reasons.append(f"not enough CPU: needs {need_cpu} MHz, {max(cpu_free, 0)} MHz free on {host.name}")
    if need_memory > mem_free:
        reasons.append(f"not enough memory: needs {human_size(need_memory)}, "
                       f"{human_size(max(mem_free, 0))} free on {host.name}")
    return reasons, enough
