"""Which pools suit a migration, and why not.

The rules are plain functions over plain values so they can be tested without a database; the
queries that feed them live with their callers. Each rule returns ``None`` when it is satisfied
and otherwise a sentence saying why not, which becomes an error text or a listed reason.
"""
from __future__ import annotations

from dataclasses import dataclass

# The seed spec's matrices: (source is local, destination is local) -> allowed.
LIVE_VOLUME_MATRIX = {(False, False): True, (False, True): False, (True, False): False, (True, True): False}
VM_WITH_VOLUME_MATRIX = {(False, False): True, (False, True): False, (True, False): False, (True, True): True}


def split_tags(text: str | None) -> set[str]:
    return {t.strip() for t in (text or "").split(",") if t.strip()}


def missing_tags(required: str | None, offered: str | None) -> set[str]:
    """Storage (or host) tags the offering asks for that the pool (or host) lacks."""
    return split_tags(required) - split_tags(offered)


@dataclass(frozen=True)
class PoolFacts:
    """What the rules need to know about a pool."""

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
    if dest.state != "Up":
        return f"storage pool {dest.name} is not Up (state {dest.state})"
    return None


def tag_refusal(dest: PoolFacts, offering_tags: str | None, offering_name: str) -> str | None:
    missing = missing_tags(offering_tags, dest.tags)
    if missing:
        return (f"storage pool {dest.name} lacks the storage tag(s) "
                f"{', '.join(sorted(missing))} of disk offering {offering_name}")
    return None


def capacity_refusal(dest: PoolFacts, size: int, overprovisioning: float) -> str | None:
    """Room = capacity x overprovisioning factor - allocated; the moving volume must fit."""
    room = int(dest.capacity * overprovisioning) - dest.allocated
    if size > room:
        return (f"storage pool {dest.name} has {max(room, 0)} bytes free (capacity "
                f"{dest.capacity} x {overprovisioning:g} - allocated {dest.allocated}), "
                f"the volume needs {size}")
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
