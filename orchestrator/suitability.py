"""Where a VM (with its volumes) may go: the facts from the database, judged by the rules in
``placement``. findHostsForMigration lists these verdicts; intake refuses exactly what they list
as unsuitable, with the same reasons - one set of rules for both.

Built for large clouds: a request reads only the VM's zone, with plain column queries (no ORM
objects) into named tuples: its hosts with what their responses show (one query), their CPU and
memory allocations (one grouped query), and of its pools only those that can win a place, with
their allocations (one query; ``pool_facts``). Pools are indexed by host and by cluster, and
where a VM's shared volumes would go is worked out once per cluster, so judging every host of a
zone costs about one pass over its hosts plus a few pools per cluster.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import BigInteger, cast, func, select
from sqlalchemy.orm import Session

from . import globalconfig, placement, pool_facts, responses
from .errors import InvalidParameter
from .models import (Cluster, DiskOffering, Host, HypervisorCapability, Pod, ServiceOffering, StoragePool,
                     VirtualMachine, Volume, Zone)
from .placement import HostFacts, PoolFacts, VolumeFacts
from .states import VmState

ACTIVE_VM_STATES = (VmState.RUNNING, VmState.MIGRATING)


def motion_versions(session: Session) -> set[tuple[str, str]]:
    """(hypervisor, version) pairs whose capability row allows storage motion."""
    return set(session.execute(select(HypervisorCapability.hypervisor_type,
                                      HypervisorCapability.hypervisor_version)
                               .where(HypervisorCapability.storage_migration_supported.is_(True))).all())


def _allocations(zone_id: int):
    """CPU (MHz) and memory (bytes) of the active VMs on each host of the zone, as a subquery."""
    return (select(VirtualMachine.host_id.label("host_id"),
                   cast(func.sum(ServiceOffering.cpu_number * ServiceOffering.cpu_speed), BigInteger).label("cpu"),
                   cast(func.sum(ServiceOffering.memory), BigInteger).label("memory"))
            .join(ServiceOffering, ServiceOffering.id == VirtualMachine.service_offering_id)
            .where(VirtualMachine.zone_id == zone_id, VirtualMachine.state.in_(ACTIVE_VM_STATES),
                   VirtualMachine.host_id.is_not(None))
            .group_by(VirtualMachine.host_id).subquery())


def zone_hosts(session: Session, zone_id: int) -> tuple[dict[int, HostFacts], dict[int, tuple]]:
    """The zone's hosts as the rules see them (with the CPU and memory their active VMs take),
    and the rest of what a host response shows (uuid, ip address, pod uuid and name, cluster uuid
    and name, cpu number and speed, created), from one query."""
    used = _allocations(zone_id)
    rows = session.connection().execute(
        select(Host.id, Host.name, Host.zone_id, Host.cluster_id, Host.status, Host.resource_state,
               Host.hypervisor, Host.hypervisor_version, Host.cpu_number * Host.cpu_speed, Host.memory,
               Host.host_tags, func.coalesce(used.c.cpu, 0), func.coalesce(used.c.memory, 0),
               Host.uuid, Host.ip_address, Pod.uuid, Pod.name, Cluster.uuid, Cluster.name,
               Host.cpu_number, Host.cpu_speed, Host.created)
        .join(Pod, Pod.id == Host.pod_id).join(Cluster, Cluster.id == Host.cluster_id)
        .outerjoin(used, used.c.host_id == Host.id)
        .where(Host.zone_id == zone_id).order_by(Host.id)).all()
    make = HostFacts._make
    return {r[0]: make(r[:13]) for r in rows}, {r[0]: r[13:] for r in rows}


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
        self.vm, self.session = vm, session
        self.factor = globalconfig.overprovisioning_factor(session)
        self.facts, self._details = zone_hosts(session, vm.zone_id)
        self.source = self.facts[vm.host_id]
        rows = session.connection().execute(
            select(Volume.id, Volume.name, Volume.size, Volume.pool_id, DiskOffering.tags, DiskOffering.name,
                   StoragePool.is_local)
            .join(DiskOffering, DiskOffering.id == Volume.disk_offering_id)
            .join(StoragePool, StoragePool.id == Volume.pool_id)
            .where(Volume.vm_id == vm.id).order_by(Volume.device_id, Volume.id)).all()
        self._uses_local = any(r[6] for r in rows)
        # Only the shared pools that can win a place (see pool_facts); the whole zone if a volume
        # finds none. Local pools only for a VM with a local volume (or an admin naming one).
        shared_needs = [r[4] for r in rows if not r[6]]
        self.pools = pool_facts.candidate_pools(session, vm.zone_id, shared_needs, self.factor, self._uses_local,
                                                {r[3] for r in rows})
        self._partial = True
        self._index()
        self.volumes = [VolumeFacts(r[0], r[1], r[2], self.pools[r[3]], r[4], r[5]) for r in rows]
        self._local = [v for v in self.volumes if v.pool.is_local]
        self._local_bytes = sum(v.size for v in self._local)
        self._local_needs = {placement.split_tags(v.offering_tags) for v in self._local}
        self.need_cpu, self.need_memory, self.need_tags, *self._zone = session.connection().execute(
            select(ServiceOffering.cpu_number * ServiceOffering.cpu_speed, ServiceOffering.memory,
                   ServiceOffering.host_tags, Zone.uuid, Zone.name)
            .join(Zone, Zone.id == vm.zone_id).where(ServiceOffering.id == vm.service_offering_id)).one()
        self.motion_supported = (self.source.hypervisor, self.source.version) in motion_versions(session)
        self._cluster_plans: dict[int, tuple[dict[int, int], list[str], bool]] = {}

    def _index(self) -> None:
        self.by_host, self.by_cluster, self.zone_wide = defaultdict(list), defaultdict(list), []
        for pool in self.pools.values():
            if pool.scope == "HOST":
                self.by_host[pool.host_id].append(pool)
            elif pool.scope == "CLUSTER":
                self.by_cluster[pool.cluster_id].append(pool)
            else:
                self.zone_wide.append(pool)

    def _load_whole_zone(self) -> None:
        """Every pool of the zone, in the database's order (a refusal lists pools in this order)."""
        whole = pool_facts.zone_pools(self.session, self.vm.zone_id, include_local=self._uses_local)
        self.pools = {**whole, **{k: v for k, v in self.pools.items() if k not in whole}}
        self._partial = False
        self._index()

    def _pool(self, pool_id: int) -> PoolFacts | None:
        """A pool of the VM's zone by id (pools not read up front are looked up here)."""
        pool = self.pools.get(pool_id)
        if pool is None:
            pool = pool_facts.pools_by_id(self.session, self.vm.zone_id, {pool_id}).get(pool_id)
            if pool is not None:
                self.pools[pool_id] = pool
        return pool

    def host_response(self, facts: HostFacts) -> dict:
        """The CloudStack host response of a host of the VM's zone."""
        uuid, ip, pod_uuid, pod_name, cluster_uuid, cluster_name, cpu_number, cpu_speed, created = \
            self._details[facts.id]
        zone_uuid, zone_name = self._zone
        return responses.host_fields(uuid, facts.name, facts.status, ip, zone_uuid, zone_name, pod_uuid, pod_name,
                                     cluster_uuid, cluster_name, facts.hypervisor, facts.version, cpu_number,
                                     cpu_speed, facts.memory, facts.host_tags, facts.resource_state, created,
                                     facts.cpu_allocated, facts.memory_allocated)

    def uses_local(self) -> bool:
        return any(v.pool.is_local for v in self.volumes)

    def reachable(self, host: HostFacts, local: bool) -> list[PoolFacts]:
        return self.by_host.get(host.id, []) if local else self.by_cluster.get(host.cluster_id, []) + self.zone_wide

    def _place(self, host: HostFacts, volumes: list[VolumeFacts], explicit: dict[int, int],
               moves: dict[int, int], planned: dict[int, int]) -> list[str]:
        problems = []
        for volume in volumes:
            if volume.id in explicit:
                pool = self._pool(explicit[volume.id])
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
                planned[pool.id] = planned.get(pool.id, 0) + volume.size
        return problems

    def _all_fit_local(self, host: HostFacts, moves: dict[int, int]) -> bool:
        """The common case of ``_place`` for the local volumes, decided without it: the host has
        one local pool, Up, with every tag they need and room for all of them - then
        ``choose_pool`` sends each there, one after the other. Records the moves; False means
        "not that case" (``_place`` decides, and says why not)."""
        pools = self.by_host.get(host.id)
        if not pools or len(pools) != 1:
            return False
        pool = pools[0]
        if pool.state != "Up" or not pool.is_local or \
                int(pool.capacity * self.factor) - pool.allocated < self._local_bytes:
            return False
        have = placement.split_tags(pool.tags)
        if not all(need <= have for need in self._local_needs):
            return False
        for volume in self._local:
            if volume.pool.id != pool.id:
                moves[volume.id] = pool.id
        return True

    def judge(self, host_id: int, explicit: dict[int, int] | None = None) -> HostVerdict:
        """The verdict for moving the VM to ``host_id``; ``explicit`` maps volume id -> pool id."""
        explicit = explicit or {}
        host = self.facts[host_id]
        local = [v for v in self.volumes if v.pool.is_local or v.id in explicit] if explicit else self._local
        moves: dict[int, int] = {}
        problems = [] if not local or (not explicit and self._all_fit_local(host, moves)) else \
            self._place(host, local, explicit, moves, {})
        shared_moves, shared_problems, shared_away = self._shared_plan(host, explicit)
        moves.update(shared_moves)
        problems += shared_problems
        requires = bool(moves) or shared_away or any(not placement.host_reaches(host, v.pool) for v in local)
        reasons, enough = placement.host_refusals(self.source, host, self.need_cpu, self.need_memory,
                                                  self.need_tags, requires, self.motion_supported)
        reasons += problems
        return HostVerdict(host, not reasons, requires, enough, reasons, moves)

    def _shared_plan(self, host: HostFacts, explicit: dict[int, int]) -> tuple[dict[int, int], list[str], bool]:
        """Where the shared volumes nobody placed go, why they cannot, and whether any is out of the
        host's reach now. Cluster and zone-wide pools make it the same answer for every host of a
        cluster, so it is worked out once per cluster (when nothing is placed explicitly)."""
        plan = None if explicit else self._cluster_plans.get(host.cluster_id)
        if plan is None:
            shared = [v for v in self.volumes if not v.pool.is_local and v.id not in explicit]
            moves: dict[int, int] = {}
            problems = self._place(host, shared, {}, moves, {})
            if problems and self._partial:  # say why not over every pool, as the rules see them
                self._load_whole_zone()
                return self._shared_plan(host, explicit)
            plan = (moves, problems, any(not placement.host_reaches(host, v.pool) for v in shared))
            if not explicit:
                self._cluster_plans[host.cluster_id] = plan
        return plan

    def candidates(self) -> list[HostVerdict]:
        """Every other host of the zone, judged; suitable first, then those needing no storage
        motion, then most free memory, then name."""
        verdicts = [self.judge(hid) for hid in self.facts if hid != self.source.id]
        verdicts.sort(key=lambda v: (not v.suitable, v.requires_storage_motion,
                                     -(v.facts.memory - v.facts.memory_allocated), v.facts.name))
        return verdicts
