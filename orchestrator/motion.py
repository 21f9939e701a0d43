"""Intake: validate a migration request, move its objects to Migrating, record the job, enqueue.

Everything the request needs is checked before anything changes; the state changes, the job row
and the Scheduled event are one transaction; the job id is published only after that commit.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import events, globalconfig, logcontext, placement
from .db import Database, cas
from .errors import ConcurrentOperation, InvalidParameter
from .models import AsyncJob, HypervisorCapability, JobResource, StoragePool, VirtualMachine, Volume, utcnow
from .states import JobPhase, VmState, VolumeState

log = logging.getLogger(__name__)

MIGRATE_VOLUME_CMD = "org.apache.cloudstack.api.command.admin.volume.MigrateVolumeCmdByAdmin"


@dataclass(frozen=True)
class Caller:
    account_id: int
    user_id: int
    account_type: int  # 1 root admin, 2 domain admin, 0 user

    @property
    def is_root_admin(self) -> bool:
        return self.account_type == 1


def storage_motion_supported(session: Session, hypervisor: str, version: str) -> bool:
    """The capability row for exactly this hypervisor type and version (no default fallback)."""
    row = session.scalar(select(HypervisorCapability).where(
        HypervisorCapability.hypervisor_type == hypervisor,
        HypervisorCapability.hypervisor_version == version))
    return bool(row and row.storage_migration_supported)


def pool_facts(session: Session, pool: StoragePool) -> placement.PoolFacts:
    allocated = session.scalar(select(func.coalesce(func.sum(Volume.size), 0))
                               .where(Volume.pool_id == pool.id)) or 0
    return placement.PoolFacts(name=pool.name, is_local=pool.is_local, scope=pool.scope,
                               state=pool.state, zone_id=pool.zone_id, cluster_id=pool.cluster_id,
                               host_id=pool.host_id, tags=pool.tags,
                               capacity=pool.capacity_bytes, allocated=int(allocated))


def check_migrate_volume(session: Session, volume: Volume, dest: StoragePool, livemigrate: bool) -> None:
    """Raise InvalidParameter with the first reason this live volume migration cannot happen."""
    if volume.state != VolumeState.READY:
        raise InvalidParameter(f"Volume {volume.name} must be in Ready state to be migrated; "
                               f"it is {volume.state}")
    vm = volume.vm
    if vm is None or vm.state != VmState.RUNNING or vm.host is None:
        state = "not attached to a virtual machine" if vm is None else f"attached to VM {vm.name} in state {vm.state}"
        raise InvalidParameter(f"Volume {volume.name} is {state}; only live migration of a volume "
                               f"attached to a Running VM is supported")
    host = vm.host
    if not storage_motion_supported(session, host.hypervisor, host.hypervisor_version):
        raise InvalidParameter(
            f"Storage motion is not supported on host {host.name}: hypervisor {host.hypervisor} "
            f"version {host.hypervisor_version} has storage_migration_supported = 0")
    if not livemigrate:
        raise InvalidParameter(f"The volume {volume.name} is attached to a vm and for migrating it "
                               f"the parameter livemigrate should be specified")
    if dest.id == volume.pool_id:
        raise InvalidParameter(f"Volume {volume.name} is already on storage pool {dest.name}")
    facts = pool_facts(session, dest)
    factor = globalconfig.overprovisioning_factor(session)
    reasons = placement.volume_pool_refusals(
        src_local=volume.pool.is_local, dest=facts, host_zone_id=host.zone_id,
        host_cluster_id=host.cluster_id, offering_tags=volume.disk_offering.tags,
        offering_name=volume.disk_offering.name, size=volume.size, overprovisioning=factor)
    logcontext.log_decision("pools", f"volume {volume.name} (migrateVolume)",
                            [{"name": dest.name, "suitable": not reasons, "reasons": reasons}],
                            chosen=None if reasons else dest.name, volume=volume.uuid,
                            vm=vm.name, host=host.name, pool=dest.name, src_pool=volume.pool.name)
    if reasons:
        raise InvalidParameter(f"Cannot migrate volume {volume.name} to storage pool {dest.name}: "
                               + "; ".join(reasons))


def migrate_volume(db: Database, enqueue: Callable[[int], None], caller: Caller, volume_id: int,
                   pool_id: int, livemigrate: bool, params: dict) -> str:
    """Accept a live volume migration; returns the job's UUID. Changes nothing if it refuses."""
    with db.uow() as uow:
        s = uow.session
        volume = s.get(Volume, volume_id)
        dest = s.get(StoragePool, pool_id)
        check_migrate_volume(s, volume, dest, livemigrate)
        try:
            # Lock the VM as Running too, so a VM migration that starts at the same moment and
            # this volume migration cannot both win.
            cas(s, VirtualMachine, volume.vm.id, {"state": VmState.RUNNING}, {"state": VmState.RUNNING})
            cas(s, Volume, volume.id, {"state": VolumeState.READY},
                {"state": VolumeState.MIGRATING}, what=f"volume {volume.name}")
        except ConcurrentOperation:
            raise InvalidParameter(f"Volume {volume.name} must be in Ready state to be migrated; "
                                   f"another operation has just taken it") from None
        job = AsyncJob(account_id=caller.account_id, user_id=caller.user_id, command="migrateVolume",
                       cmd=MIGRATE_VOLUME_CMD, params=json.dumps(params), phase=JobPhase.QUEUED,
                       host_id=volume.vm.host_id, bytes_total=volume.size)
        s.add(job)
        s.flush()
        s.add(JobResource(job_id=job.id, resource_type="Volume", resource_id=volume.id,
                          src_pool_id=volume.pool_id, dest_pool_id=dest.id,
                          src_host_id=volume.vm.host_id))
        ev = events.record(s, job, events.VOLUME_MIGRATE, "Scheduled",
                           f"Attempting to migrate volume Id: {volume.uuid} to storage pool Id: {dest.uuid}")
        job.start_event_id = ev.id
        ev.start_id = ev.id
        job_id, job_uuid = job.id, job.uuid
        what = logcontext.fields(job=job_uuid, volume=volume.uuid, vm=volume.vm.name, host=volume.vm.host.name,
                                 pool=dest.name, src_pool=volume.pool.name)
        uow.after_commit(lambda: publish(db, enqueue, job_id))
        uow.commit()
    log.info("job %s accepted: migrate volume %s of VM %s from pool %s to pool %s", job_uuid,
             volume.name, what["vm"], what["src_pool"], dest.name, extra=what)
    return job_uuid


def publish(db: Database, enqueue: Callable[[int], None], job_id: int) -> bool:
    """Send the wake-up for a committed job and stamp it published. False if the broker failed;
    the scheduler publishes such jobs later (the job row is the truth, the message only wakes)."""
    try:
        enqueue(job_id)
    except Exception:  # broker down: leave published_at empty for the scheduler
        log.exception("could not publish job %s; the scheduler will retry", job_id)
        return False
    with db.uow() as uow:
        job = uow.session.get(AsyncJob, job_id)
        if job is not None and job.published_at is None:
            job.published_at = utcnow()
            uow.commit()
    return True


def publish_unpublished(db: Database, enqueue: Callable[[int], None], older_than_s: float = 5.0) -> int:
    """Publish pending jobs that were committed but never published (crash or broker outage)."""
    from datetime import timedelta

    cutoff = utcnow() - timedelta(seconds=older_than_s)
    with db.uow() as uow:
        ids = list(uow.session.scalars(select(AsyncJob.id).where(
            AsyncJob.status == 0, AsyncJob.published_at.is_(None), AsyncJob.created < cutoff)))
    return sum(1 for job_id in ids if publish(db, enqueue, job_id))
