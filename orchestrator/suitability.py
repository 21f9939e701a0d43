"""Where a VM (with its volumes) or a volume may go: the facts from the database, judged by the
rules in ``placement``. The find* commands list these verdicts; intake refuses exactly what they
list as unsuitable, with the same reasons - one set of rules for both.

Queries are per request and bounded by the VM's zone: the hosts of the zone, their allocations
(one grouped query), and the zone's pools with their allocations (one grouped query).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import globalconfig, placement
from .errors import InvalidParameter
from .models import Host, HypervisorCapability, ServiceOffering, StoragePool, VirtualMachine, Volume
from .placement import HostFacts, PoolFacts, VolumeFacts
from .states import VmState

ACTIVE_VM_STATES = (VmState.RUNNING, VmState.MIGRATING)


def pool_facts(pool: StoragePool, allocated: int) -> PoolFacts:
    return PoolFacts(name=pool.name, is_local=pool.is_local, scope=pool.scope, state=pool.state,
                     zone_id=pool.zone_id, cluster_id=pool.cluster_id, host_id=pool.host_id,
                     tags=pool.tags, capacity=pool.capacity_bytes, allocated=allocated, id=pool.id)


def host_facts(host: Host, cpu_allocated: int = 0, memory_allocated: int = 0) -> HostFacts:
    return HostFacts(id=host.id, name=host.name, zone_id=host.zone_id, cluster_id=host.cluster_id,
                     status=host.status, resource_state=host.resource_state, hypervisor=host.hypervisor,
                     version=host.hypervisor_version, cpu_total=host.cpu_number * host.cpu_speed,
                     memory=host.memory, host_tags=host.host_tags,
                     cpu_allocated=cpu_allocated, memory_allocated=memory_allocated)


def motion_versions(session: Session) -> set[tuple[str, str]]:
    """(hypervisor, version) pairs whose capability row allows storage motion."""
    return set(session.execute(select(HypervisorCapability.hypervisor_type,
                                      HypervisorCapability.hypervisor_version)
                               .where(HypervisorCapability.storage_migration_supported.is_(True))).all())


def zone_pools(session: Session, zone_id: int, local: bool | None = None) -> dict[int, PoolFacts]:
    """Every pool of the zone with the bytes allocated on it."""
    allocated = (select(Volume.pool_id, func.sum(Volume.size).label("allocated"))
                 .group_by(Volume.pool_id).subquery())
    query = (select(StoragePool, func.coalesce(allocated.c.allocated, 0))
             .outerjoin(allocated, allocated.c.pool_id == StoragePool.id)
             .where(StoragePool.zone_id == zone_id))
    if local is not None:
        query = query.where(StoragePool.is_local.is_(local))
    return {p.id: pool_facts(p, int(a)) for p, a in session.execute(query)}


def zone_hosts(session: Session, zone_id: int) -> list[Host]:
    return list(session.scalars(select(Host).where(Host.zone_id == zone_id).order_by(Host.id)))


def host_allocations(session: Session, zone_id: int) -> dict[int, tuple[int, int]]:
    """CPU (MHz) and memory (bytes) of the active VMs on each host of the zone."""
    rows = session.execute(
        select(VirtualMachine.host_id,
               func.sum(ServiceOffering.cpu_number * ServiceOffering.cpu_speed),
               func.sum(ServiceOffering.memory))
        .join(ServiceOffering, ServiceOffering.id == VirtualMachine.service_offering_id)
        .where(VirtualMachine.zone_id == zone_id, VirtualMachine.state.in_(ACTIVE_VM_STATES),
               VirtualMachine.host_id.is_not(None))
        .group_by(VirtualMachine.host_id))
    return {host_id: (int(cpu or 0), int(mem or 0)) for host_id, cpu, mem in rows}


@dataclass
class HostVerdict:
    host: Host
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
        if vm.host is None:
            raise InvalidParameter(f"VM {vm.name} has no host")
        self.session = session
        self.vm = vm
        self.factor = globalconfig.overprovisioning_factor(session)
        allocations = host_allocations(session, vm.zone_id)
        self.hosts = {h.id: h for h in zone_hosts(session, vm.zone_id)}
        self.facts = {hid: host_facts(h, *allocations.get(hid, (0, 0))) for hid, h in self.hosts.items()}
        self.source = self.facts[vm.host_id]
        self.pools = zone_pools(session, vm.zone_id)
        self.volumes = [VolumeFacts(v.id, v.name, v.size, self.pools[v.pool_id], v.disk_offering.tags,
                                    v.disk_offering.name)
                        for v in session.scalars(select(Volume).where(Volume.vm_id == vm.id)
                                                 .order_by(Volume.device_id, Volume.id))]
        so = vm.service_offering
        self.need_cpu, self.need_memory, self.need_tags = so.cpu_number * so.cpu_speed, so.memory, so.host_tags
        self.motion_supported = (self.source.hypervisor, self.source.version) in motion_versions(session)

    def uses_local(self) -> bool:
        return any(v.pool.is_local for v in self.volumes)

    def judge(self, host_id: int, explicit: dict[int, int] | None = None) -> HostVerdict:
        """The verdict for moving the VM to ``host_id``; ``explicit`` maps volume id -> pool id."""
        explicit = explicit or {}
        host = self.facts[host_id]
        pools = list(self.pools.values())
        moves, planned, problems = {}, defaultdict(int), []
        for volume in self.volumes:
            if volume.id in explicit:
                pool = self.pools.get(explicit[volume.id])
                if pool is None:
                    raise InvalidParameter(f"storage pool id {explicit[volume.id]} is not in the VM's zone")
                bad = placement.pair_refusals(volume, pool, host, planned, self.factor)
                if bad:
                    problems += bad
                    continue
            else:
                pool, why = placement.choose_pool(volume, host, pools, planned, self.factor)
                if why:
                    problems.append(why)
                    continue
            if pool.id != volume.pool.id:
                moves[volume.id] = pool.id
                planned[pool.id] += volume.size
        requires = bool(moves) or any(not placement.host_reaches(host, v.pool) for v in self.volumes)
        reasons, enough = placement.host_refusals(self.source, host, self.need_cpu, self.need_memory,
                                                  self.need_tags, requires, self.motion_supported)
        reasons += problems
        return HostVerdict(self.hosts[host_id], host, not reasons, requires, enough, reasons, moves)

    def candidates(self) -> list[HostVerdict]:
        """Every other host of the zone, judged; suitable first, then those needing no storage
        motion, then most free memory, then name."""
        verdicts = [self.judge(hid) for hid in self.facts if hid != self.source.id]
        verdicts.sort(key=lambda v: (not v.suitable, v.requires_storage_motion,
                                     -(v.facts.memory - v.facts.memory_allocated), v.facts.name))
        return verdicts
