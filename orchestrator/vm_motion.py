"""Intake of VM migrations: migrateVirtualMachineWithVolume (the seed's Scenario 2) and the
host-only migrateVirtualMachine.

The verdict comes from ``suitability.VmMove.judge`` - the same rules findHostsForMigration
lists - so a host listed as suitable is accepted and one listed as unsuitable is refused with the
same reasons. Accepting is one transaction: VM Running -> Migrating, each moving volume
Ready -> Migrating, the job and its Scheduled event; the job id is published after commit.
"""
from __future__ import annotations

import json
import logging
from typing import Callable

from sqlalchemy import select

from . import events, logcontext
from .db import Database, cas
from .errors import ConcurrentOperation, InvalidParameter
from .models import AsyncJob, Host, JobResource, VirtualMachine, Volume
from .motion import Caller, publish
from .states import JobPhase, VmState, VolumeState
from .suitability import VmMove

WITH_VOLUME_CMD = "org.apache.cloudstack.api.command.admin.vm.MigrateVirtualMachineWithVolumeCmd"
HOST_ONLY_CMD = "org.apache.cloudstack.api.command.admin.vm.MigrateVMCmd"

log = logging.getLogger(__name__)


def migrate_vm(db: Database, enqueue: Callable[[int], None], caller: Caller, vm_id: int, host_id: int,
               mapping: dict[int, int], params: dict, with_volumes: bool = True) -> str:
    """Accept a live VM migration to ``host_id``; ``mapping`` is volume id -> pool id chosen by
    the caller (the rest are placed automatically). Returns the job UUID; refusals change nothing."""
    command = "migrateVirtualMachineWithVolume" if with_volumes else "migrateVirtualMachine"
    with db.uow() as uow:
        s = uow.session
        vm = s.get(VirtualMachine, vm_id)
        dest = s.get(Host, host_id)
        if dest.id == vm.host_id:
            raise InvalidParameter(f"Cannot migrate VM {vm.name}: it is already on host {dest.name}; "
                                   f"specify another destination host")
        if dest.zone_id != vm.zone_id:
            raise InvalidParameter(f"Cannot migrate VM {vm.name} to host {dest.name}: the host is in "
                                   f"another zone")
        move = VmMove(s, vm)
        volumes = {v.id: v for v in s.scalars(select(Volume).where(Volume.vm_id == vm.id))}
        busy = [v.name for v in volumes.values() if v.state != VolumeState.READY]
        if busy:
            raise InvalidParameter(f"Cannot migrate VM {vm.name}: volume(s) {', '.join(busy)} not in "
                                   f"Ready state")
        verdict = move.judge(dest.id, mapping)
        placed = {volumes[v].name: move.pools[p].name for v, p in verdict.placement.items()}
        source_host = move.source.name
        logcontext.log_decision("hosts", f"VM {vm.name} ({command})",
                                [{"name": dest.name, "suitable": verdict.suitable, "reasons": verdict.reasons}],
                                chosen=dest.name if verdict.suitable else None, vm=vm.name,
                                host=source_host, dest_host=dest.name, pool=sorted(set(placed.values())))
        if verdict.suitable and placed:
            log.info("VM %s to host %s: volumes placed %s (%s)", vm.name, dest.name,
                     ", ".join(f"{v} -> {p}" for v, p in sorted(placed.items())),
                     "given by the caller or automatic" if mapping else "automatic",
                     extra=logcontext.fields(vm=vm.name, host=source_host, dest_host=dest.name))
        if not with_volumes and verdict.requires_storage_motion:
            raise InvalidParameter(
                f"Migrating VM {vm.name} to host {dest.name} requires storage motion (the host cannot "
                f"reach every pool of the VM's volumes); use migrateVirtualMachineWithVolume")
        if not verdict.suitable:
            raise InvalidParameter(f"Cannot migrate VM {vm.name} to host {dest.name}: "
                                   + "; ".join(verdict.reasons))
        try:
            cas(s, VirtualMachine, vm.id, {"state": VmState.RUNNING, "host_id": vm.host_id},
                {"state": VmState.MIGRATING})
            for volume in volumes.values():  # moving: to Migrating; staying: locked as Ready
                target = VolumeState.MIGRATING if volume.id in verdict.placement else VolumeState.READY
                cas(s, Volume, volume.id, {"state": VolumeState.READY, "pool_id": volume.pool_id},
                    {"state": target})
        except ConcurrentOperation:
            raise InvalidParameter(f"Cannot migrate VM {vm.name}: it or one of its volumes was just "
                                   f"taken by another operation") from None
        job = AsyncJob(account_id=caller.account_id, user_id=caller.user_id, command=command,
                       cmd=WITH_VOLUME_CMD if with_volumes else HOST_ONLY_CMD, params=json.dumps(params),
                       phase=JobPhase.QUEUED, host_id=vm.host_id, dest_host_id=dest.id,
                       bytes_total=sum(volumes[v].size for v in verdict.placement))
        s.add(job)
        s.flush()
        s.add(JobResource(job_id=job.id, resource_type="VirtualMachine", resource_id=vm.id,
                          src_host_id=vm.host_id, dest_host_id=dest.id))
        for volume_id, pool_id in verdict.placement.items():
            s.add(JobResource(job_id=job.id, resource_type="Volume", resource_id=volume_id,
                              src_pool_id=volumes[volume_id].pool_id, dest_pool_id=pool_id,
                              src_host_id=vm.host_id, dest_host_id=dest.id))
        ev = events.record(s, job, events.VM_MIGRATE, "Scheduled",
                           f"Attempting to migrate VM Id: {vm.uuid} to host Id: {dest.uuid}")
        job.start_event_id = ev.id
        ev.start_id = ev.id
        job_id, job_uuid = job.id, job.uuid
        what = logcontext.fields(job=job_uuid, vm=vm.name, host=source_host, dest_host=dest.name,
                                 volume=[volumes[v].uuid for v in verdict.placement],
                                 pool=sorted(set(placed.values())))
        uow.after_commit(lambda: publish(db, enqueue, job_id))
        uow.commit()
    log.info("job %s accepted: %s of VM %s from host %s to host %s, %d volume(s) moving", job_uuid, command,
             what["vm"], source_host, what["dest_host"], len(placed), extra=what)
    return job_uuid
