"""findStoragePoolsForMigration and findHostsForMigration: where a volume or a VM could go, and
why not.

findStoragePoolsForMigration: the pools a volume could live-migrate to.

Candidates are the shared pools the VM's host can reach (its cluster's pools, its zone's
zone-wide pools) other than the volume's own pool. Each is ``suitableformigration`` when the
same rules ``migrateVolume`` applies find nothing against it; otherwise the extra field
``reasons`` says why. A volume on local storage gets an empty list, as CloudStack answers, so
UIs built for CloudStack keep working (``migrateVolume`` refuses it with a 431 naming why).
Suitable pools come first, most free capacity first.
"""
from __future__ import annotations

from sqlalchemy import or_, select

from orchestrator import globalconfig, models as m, motion, placement, responses, suitability
from orchestrator.errors import InvalidParameter
from orchestrator.logcontext import log_decision

from .registry import Context, command


@command("findStoragePoolsForMigration", admin_only=True)
def find_storage_pools_for_migration(ctx: Context) -> dict:
    s = ctx.session
    volume = ctx.params.entity(s, m.Volume, "id", required=True)
    vm = volume.vm
    if volume.pool.is_local or volume.state != "Ready" or vm is None or vm.host is None \
            or vm.state != "Running" \
            or not motion.storage_motion_supported(s, vm.host.hypervisor, vm.host.hypervisor_version):
        return {}
    host = vm.host
    pools = s.scalars(select(m.StoragePool).where(
        m.StoragePool.id != volume.pool_id, m.StoragePool.is_local.is_(False),
        or_(m.StoragePool.cluster_id == host.cluster_id,
            (m.StoragePool.scope == "ZONE") & (m.StoragePool.zone_id == host.zone_id)))).all()
    keyword = ctx.params.get("keyword")
    if keyword:
        pools = [p for p in pools if keyword.lower() in p.name.lower()]
    factor = globalconfig.overprovisioning_factor(s)
    allocated = responses.allocated_by_pool(s, [p.id for p in pools])
    rows = []
    for pool in pools:
        facts = placement.PoolFacts(pool.name, pool.is_local, pool.scope, pool.state, pool.zone_id,
                                    pool.cluster_id, pool.host_id, pool.tags, pool.capacity_bytes,
                                    allocated.get(pool.id, 0))
        reasons = placement.volume_pool_refusals(
            False, facts, host.zone_id, host.cluster_id, volume.disk_offering.tags,
            volume.disk_offering.name, volume.size, factor)
        free = int(pool.capacity_bytes * factor) - facts.allocated
        rows.append((not reasons, free, pool, reasons))
    rows.sort(key=lambda r: (not r[0], -r[1], r[2].name))
    log_decision("pools", f"volume {volume.name} (findStoragePoolsForMigration)",
                 [{"name": pool.name, "suitable": ok, "reasons": reasons} for ok, _free, pool, reasons in rows],
                 volume=volume.uuid, vm=vm.name, host=host.name)
    if not rows:
        return {}
    paging = ctx.params.paging()
    page = rows[paging[0]:paging[0] + paging[1]] if paging else rows
    out = []
    for suitable, _free, pool, reasons in page:
        obj = responses.storage_pool(pool, allocated.get(pool.id, 0), factor)
        obj["suitableformigration"] = suitable
        if reasons:
            obj["reasons"] = reasons
        out.append(obj)
    return {"count": len(rows), "storagepool": out}


@command("findHostsForMigration", admin_only=True)
def find_hosts_for_migration(ctx: Context) -> dict:
    """Every other host of the VM's zone with ``suitableformigration``, ``requiresStorageMotion``
    (camelCase, as CloudStack sends it), ``hasenoughcapacity`` and, when unsuitable, ``reasons``.
    Order: suitable first, then hosts needing no storage motion, then most free memory."""
    vm = ctx.params.entity(ctx.session, m.VirtualMachine, "virtualmachineid", required=True)
    move = suitability.VmMove(ctx.session, vm)
    if not move.motion_supported and move.uses_local():
        raise InvalidParameter(f"Unsupported operation, VM {vm.name} uses Local storage, cannot migrate: "
                               f"storage motion is not supported on {move.source.hypervisor} "
                               f"{move.source.version}")
    verdicts = move.candidates()
    log_decision("hosts", f"VM {vm.name} (findHostsForMigration)",
                 [(v.facts.name, v.suitable, v.reasons) for v in verdicts], vm=vm.name, host=move.source.name)
    keyword = ctx.params.get("keyword")
    if keyword:
        verdicts = [v for v in verdicts if keyword.lower() in v.facts.name.lower()]
    if not verdicts:
        return {}
    paging = ctx.params.paging()
    page = verdicts[paging[0]:paging[0] + paging[1]] if paging else verdicts
    out = []
    for v in page:
        obj = move.host_response(v.facts)
        obj.update(suitableformigration=v.suitable, requiresStorageMotion=v.requires_storage_motion,
                   hasenoughcapacity=v.has_enough_capacity)
        if v.reasons:
            obj["reasons"] = v.reasons
        out.append(obj)
    return {"count": len(verdicts), "host": out}
