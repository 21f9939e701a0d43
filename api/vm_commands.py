"""migrateVirtualMachineWithVolume and migrateVirtualMachine (root admin, async).

The ``migrateto`` map arrives as ``migrateto[0].volume=<uuid>&migrateto[0].pool=<uuid>&...``;
each entry needs both fields, names a volume of this VM once, and a pool; every problem is a 431
naming the entry. The rest of the checks are the intake's (orchestrator.vm_motion).
"""
from __future__ import annotations

from sqlalchemy import select

from orchestrator import models as m, vm_motion
from orchestrator.errors import InvalidParameter

from .params import UUID_RE
from .registry import Context, command


def _mapping(ctx: Context, vm: m.VirtualMachine) -> tuple[dict[int, int], list[dict]]:
    entries = ctx.params.map("migrateto")
    mapping, echo = {}, []
    for index in sorted(entries):
        entry = entries[index]
        where = f"migrateto[{index}]"
        volume_uuid, pool_uuid = entry.get("volume"), entry.get("pool")
        if not volume_uuid or not pool_uuid:
            missing = "volume" if not volume_uuid else "pool"
            raise InvalidParameter(f"Unable to execute API command {ctx.params.api_name} due to missing "
                                   f"parameter {where}.{missing}")
        for field, value in (("volume", volume_uuid), ("pool", pool_uuid)):
            if not UUID_RE.match(value):
                raise InvalidParameter(f"Invalid parameter {where}.{field} value={value}: not a UUID")
        volume = ctx.session.scalar(select(m.Volume).where(m.Volume.uuid == volume_uuid.lower()))
        if volume is None:
            raise InvalidParameter(f"There is no volume present with the given id {volume_uuid} "
                                   f"({where}.volume)")
        pool = ctx.session.scalar(select(m.StoragePool).where(m.StoragePool.uuid == pool_uuid.lower()))
        if pool is None:
            raise InvalidParameter(f"There is no storage pool present with the given id {pool_uuid} "
                                   f"({where}.pool)")
        if volume.vm_id != vm.id:
            raise InvalidParameter(f"{where}: volume {volume.name} does not belong to the virtual machine "
                                   f"{vm.name} that has to be migrated")
        if volume.id in mapping:
            raise InvalidParameter(f"{where}: volume {volume.name} is mapped more than once")
        if pool.zone_id != vm.zone_id:
            raise InvalidParameter(f"{where}: volume {volume.name} -> pool {pool.name}: the pool is in "
                                   f"another zone")
        mapping[volume.id] = pool.id
        echo.append({"volume": volume.uuid, "pool": pool.uuid})
    return mapping, echo


def _migrate(ctx: Context, with_volumes: bool) -> dict:
    vm = ctx.params.entity(ctx.session, m.VirtualMachine, "virtualmachineid", required=True)
    if with_volumes:
        host = ctx.params.entity(ctx.session, m.Host, "hostid", required=True)
        mapping, echo = _mapping(ctx, vm)
    else:
        host = ctx.params.entity(ctx.session, m.Host, "hostid")
        if ctx.params.get("storageid"):
            raise InvalidParameter("migrateVirtualMachine with storageid (cold migration of a stopped "
                                   "VM's volume) is not supported; give hostid for a live migration")
        if host is None:
            raise InvalidParameter(f"Unable to execute API command {ctx.params.api_name} due to missing "
                                   f"parameter hostid")
        mapping, echo = {}, []
    ids = (vm.id, host.id)
    params = {"virtualmachineid": vm.uuid, "hostid": host.uuid, "migrateto": echo}
    ctx.session.rollback()  # intake has its own unit of work; see migrateVolume
    job_uuid = vm_motion.migrate_vm(ctx.db, ctx.enqueue, ctx.caller, *ids, mapping, params, with_volumes)
    return {"jobid": job_uuid}


@command("migrateVirtualMachineWithVolume", admin_only=True)
def migrate_virtual_machine_with_volume(ctx: Context) -> dict:
    return _migrate(ctx, with_volumes=True)


@command("migrateVirtualMachine", admin_only=True)
def migrate_virtual_machine(ctx: Context) -> dict:
    return _migrate(ctx, with_volumes=False)
