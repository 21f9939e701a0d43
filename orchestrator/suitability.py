"""Where a VM (with its volumes) may go: the facts from the database, judged by the rules in
``placement``. findHostsForMigration lists these verdicts; intake refuses exactly what they list
as unsuitable, with the same reasons - one set of rules for both.

Built for large clouds: a request reads only the VM's zone, with plain column queries (no ORM
objects): its hosts, their CPU/memory allocations (one grouped query), its pools with their
allocations (one grouped query over the zone's volumes). Pools are indexed by host and by
cluster, and where a VM's shared volumes would go is worked out once per cluster, so judging
every host of a zone costs about one pass over the zone.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import globalconfig, placement
from .errors import InvalidParameter
from .models import (DiskOffering, Host, HypervisorCapability, ServiceOffering, StoragePool,
                     VirtualMachine, Volume)
from .placement import HostFacts, PoolFacts, VolumeFacts
from .states import VmState

ACTIVE_VM_STATES = (VmState.RUNNING, VmState.MIGRATING)
P = StoragePool


def motion_versions(session: Session) -> set[tuple[str, str]]:
    """(hypervisor, version) pairs whose capability row allows storage motion."""
    return set(session.execute(select(HypervisorCapability.hypervisor_type,
                                      HypervisorCapability.hypervisor_version)
                               .where(HypervisorCapability.storage_migration_supported.is_(True))).all())


def zone_pools(session: Session, zone_id: int) -> dict[int, PoolFacts]:
    """Every pool of the zone with the bytes allocated on it."""
    allocated = (select(Volume.pool_id, func.sum(Volume.size).label("allocated"))
                 .where(Volume.zone_id == zone_id).group_by(Volume.pool_id).subquery())
    # Core execution (not ORM): thousands of plain rows, no per-row ORM processing.
    rows = session.connection().execute(
        select(P.id, P.name, P.is_local, P.scope, P.state, P.zone_id, P.cluster_id, P.host_id, P.tags,
               P.capacity_bytes, func.coalesce(allocated.c.allocated, 0))
        .outerjoin(allocated, allocated.c.pool_id == P.id).where(P.zone_id == zone_id))
    return {r[0]: PoolFacts(name=r[1], is_local=r[2], scope=r[3], state=r[4], zone_id=r[5],
                            cluster_id=r[6], host_id=r[7], tags=r[8], capacity=r[9],
                            allocated=int(r[10]), id=r[0]) for r in rows}


def host_allocations(session: Session, zone_id: int) -> dict[int, tuple[int, int]]:
    """CPU (MHz) and memory (bytes) of the active VMs on each host of the zone."""
    rows = session.connection().execute(
        select(VirtualMachine.host_id,
               func.sum(ServiceOffering.cpu_number * ServiceOffering.cpu_speed),
               func.sum(ServiceOffering.memory))
        .join(ServiceOffering, ServiceOffering.id == VirtualMachine.service_offering_id)
        .where(VirtualMachine.zone_id == zone_id, VirtualMachine.state.in_(ACTIVE_VM_STATES),
               VirtualMachine.host_id.is_not(None))
        .group_by(VirtualMachine.host_id))
    return {host_id: (int(cpu or 0), int(mem or 0)) for host_id, cpu, mem in rows}


def zone_hosts(session: Session, zone_id: int) -> dict[int, HostFacts]:
    allocations = host_allocations(session, zone_id)
    rows = session.connection().execute(select(Host.id, Host.name, Host.zone_id, Host.cluster_id, Host.status,
                                  Host.resource_state, Host.hypervisor, Host.hypervisor_version,
                                  Host.cpu_number * Host.cpu_speed, Host.memory, Host.host_tags)
                           .where(Host.zone_id == zone_id).order_by(Host.id))
    return {r[0]: HostFacts(*r, *allocations.get(r[0], (0, 0))) for r in rows}


@dataclass
class HostVerdict:
    facts: HostFacts
    suitable: bool
    requires_storage_motion: bool
    has_enough_capacity: bool
    reasons: list[str]
    placement: dict[int, int] = field(default_factory=dict)  # moving volume id -> pool id


class VmMove:
    """Everything needed to judge where one running VM may go."""

    def __init__(self, session: Session, vm: VirtualMachine):
        if vm.state != VmState.RUNNING:
            raise InvalidParameter(f"VM {vm.name} is not Running (state {vm.state}); only a running "
                                   f"VM can be live-migrated")
        if vm.host_id is None:
            raise InvalidParameter(f"VM {vm.name} has no host")
        self.vm = vm
        self.factor = globalconfig.overprovisioning_factor(session)
        self.facts = zone_hosts(session, vm.zone_id)
        self.source = self.facts[vm.host_id]
        self.pools = zone_pools(session, vm.zone_id)
        self.by_host, self.by_cluster, self.zone_wide = defaultdict(list), defaultdict(list), []
        for pool in self.pools.values():
            if pool.scope == "HOST":
                self.by_host[pool.host_id].append(pool)
            elif pool.scope == "CLUSTER":
                self.by_cluster[pool.cluster_id].append(pool)
            else:
                self.zone_wide.append(pool)
        rows = session.execute(select(Volume.id, Volume.name, Volume.size, Volume.pool_id,
                                      Volume.disk_offering_id).where(Volume.vm_id == vm.id)
                               .order_by(Volume.device_id, Volume.id)).all()
        offerings = {o.id: o for o in session.scalars(select(DiskOffering).where(
            DiskOffering.id.in_({r[4] for r in rows})))}
        self.volumes = [VolumeFacts(r[0], r[1], r[2], self.pools[r[3]], offerings[r[4]].tags,
                                    offerings[r[4]].name) for r in rows]
        so = vm.service_offering
        self.need_cpu, self.need_memory, self.need_tags = so.cpu_number * so.cpu_speed, so.memory, so.host_tags
        self.motion_supported = (self.source.hypervisor, self.source.version) in motion_versions(session)
        self._shared_plans: dict[int, tuple[dict[int, int], list[str]]] = {}

    def uses_local(self) -> bool:
        return any(v.pool.is_local for v in self.volumes)

    def reachable(self, host: HostFacts, local: bool) -> list[PoolFacts]:
        return self.by_host.get(host.id, []) if local else self.by_cluster.get(host.cluster_id, []) + self.zone_wide

    def _place(self, host: HostFacts, volumes: list[VolumeFacts], explicit: dict[int, int],
               moves: dict[int, int], planned: dict[int, int]) -> list[str]:
        problems = []
        for volume in volumes:
            if volume.id in explicit:
                pool = self.pools.get(explicit[volume.id])
                if pool is None:
                    raise InvalidParameter(f"storage pool id {explicit[volume.id]} is not in the VM's zone")
                bad = placement.pair_refusals(volume, pool, host, planned, self.factor)
                if bad:
                    problems += bad
                    continue
            else:
                pool, why = placement.choose_pool(volume, host, self.reachable(host, volume.pool.is_local),
                                                  planned, self.factor)
                if why:
                    problems.append(why)
                    continue
            if pool.id != volume.pool.id:
                moves[volume.id] = pool.id
                planned[pool.id] += volume.size
        return problems

    def judge(self, host_id: int, explicit: dict[int, int] | None = None) -> HostVerdict:
        """The verdict for moving the VM to ``host_id``; ``explicit`` maps volume id -> pool id."""
        explicit = explicit or {}
        host = self.facts[host_id]
        moves: dict[int, int] = {}
        local = [v for v in self.volumes if v.pool.is_local or v.id in explicit]
        shared = [v for v in self.volumes if not v.pool.is_local and v.id not in explicit]
        problems = self._place(host, local, explicit, moves, defaultdict(int))
        # Shared volumes land on cluster or zone pools: the same answer for every host of a cluster.
        if host.cluster_id not in self._shared_plans:
            shared_moves: dict[int, int] = {}
            shared_problems = self._place(host, shared, {}, shared_moves, defaultdict(int))
            self._shared_plans[host.cluster_id] = (shared_moves, shared_problems)
        shared_moves, shared_problems = self._shared_plans[host.cluster_id]
        moves.update(shared_moves)
        problems += shared_problems
        requires = bool(moves) or any(not placement.host_reaches(host, v.pool) for v in self.volumes)
        reasons, enough = placement.host_refusals(self.source, host, self.need_cpu, self.need_memory,
                                                  self.need_tags, requires, self.motion_supported)
        reasons += problems
        return HostVerdict(host, not reasons, requires, enough, reasons, moves)

    def candidates(self) -> list[HostVerdict]:
        """Every other host of the zone, judged; suitable first, then those needing no storage
        motion, then most free memory, then name."""
        verdicts = [self.judge(hid) for hid in self.facts if hid != self.source.id]
        verdicts.sort(key=lambda v: (not v.suitable, v.requires_storage_motion,
                                     -(v.facts.memory - v.facts.memory_allocated), v.facts.name))
        return verdicts
