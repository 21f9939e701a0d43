"""Read-only list commands over the inventory: zones, pods, clusters, hosts, pools, offerings,
hypervisor capabilities, VMs and volumes. Non-admins see only their own VMs and volumes, in
CloudStack's Restricted view."""
from __future__ import annotations

from sqlalchemy import select

from orchestrator import globalconfig, models as m, responses

from .registry import Context, command, like, listing


def _named(ctx: Context, query, model):
    """Apply the common ``id``, ``name`` and ``keyword`` filters."""
    obj = ctx.params.entity(ctx.session, model, "id")
    if obj is not None:
        query = query.where(model.id == obj.id)
    if ctx.params.get("name"):
        query = query.where(model.name == ctx.params.get("name"))
    if ctx.params.get("keyword"):
        query = query.where(model.name.like(like(ctx.params.get("keyword")), escape="\\"))
    return query.order_by(model.id)


def _by(ctx: Context, query, column, model, name: str):
    obj = ctx.params.entity(ctx.session, model, name)
    return query.where(column == obj.id) if obj is not None else query


@command("listZones")
def list_zones(ctx: Context) -> dict:
    return listing(ctx, _named(ctx, select(m.Zone), m.Zone), "zone", responses.zone)


@command("listPods", admin_only=True)
def list_pods(ctx: Context) -> dict:
    q = _by(ctx, _named(ctx, select(m.Pod), m.Pod), m.Pod.zone_id, m.Zone, "zoneid")
    return listing(ctx, q, "pod", responses.pod)


@command("listClusters", admin_only=True)
def list_clusters(ctx: Context) -> dict:
    q = _named(ctx, select(m.Cluster), m.Cluster)
    q = _by(ctx, q, m.Cluster.zone_id, m.Zone, "zoneid")
    q = _by(ctx, q, m.Cluster.pod_id, m.Pod, "podid")
    return listing(ctx, q, "cluster", responses.cluster)


@command("listHosts", admin_only=True)
def list_hosts(ctx: Context) -> dict:
    q = _named(ctx, select(m.Host), m.Host)
    q = _by(ctx, q, m.Host.zone_id, m.Zone, "zoneid")
    q = _by(ctx, q, m.Host.pod_id, m.Pod, "podid")
    q = _by(ctx, q, m.Host.cluster_id, m.Cluster, "clusterid")
    if ctx.params.get("state"):
        q = q.where(m.Host.status == ctx.params.get("state"))
    if ctx.params.get("type") and ctx.params.get("type") != "Routing":
        q = q.where(False)
    return listing(ctx, q, "host", responses.host)


@command("listStoragePools", admin_only=True)
def list_storage_pools(ctx: Context) -> dict:
    q = _named(ctx, select(m.StoragePool), m.StoragePool)
    q = _by(ctx, q, m.StoragePool.zone_id, m.Zone, "zoneid")
    q = _by(ctx, q, m.StoragePool.pod_id, m.Pod, "podid")
    q = _by(ctx, q, m.StoragePool.cluster_id, m.Cluster, "clusterid")
    q = _by(ctx, q, m.StoragePool.host_id, m.Host, "hostid")
    if ctx.params.get("scope"):
        q = q.where(m.StoragePool.scope == ctx.params.get("scope").upper())
    factor = globalconfig.overprovisioning_factor(ctx.session)
    body = listing(ctx, q, "storagepool", lambda p: p)
    pools = body.get("storagepool", [])
    allocated = responses.allocated_by_pool(ctx.session, [p.id for p in pools])
    if pools:
        body["storagepool"] = [responses.storage_pool(p, allocated.get(p.id, 0), factor) for p in pools]
    return body


@command("listDiskOfferings")
def list_disk_offerings(ctx: Context) -> dict:
    q = _named(ctx, select(m.DiskOffering), m.DiskOffering)
    return listing(ctx, q, "diskoffering", responses.disk_offering)


@command("listServiceOfferings")
def list_service_offerings(ctx: Context) -> dict:
    q = _named(ctx, select(m.ServiceOffering), m.ServiceOffering)
    return listing(ctx, q, "serviceoffering", responses.service_offering)


@command("listHypervisorCapabilities", admin_only=True)
def list_hypervisor_capabilities(ctx: Context) -> dict:
    q = select(m.HypervisorCapability).order_by(m.HypervisorCapability.id)
    obj = ctx.params.entity(ctx.session, m.HypervisorCapability, "id")
    if obj is not None:
        q = q.where(m.HypervisorCapability.id == obj.id)
    if ctx.params.get("hypervisor"):
        q = q.where(m.HypervisorCapability.hypervisor_type == ctx.params.get("hypervisor"))
    return listing(ctx, q, "hypervisorCapabilities", responses.hypervisor_capability)


def _own(ctx: Context, query, model):
    return query if ctx.caller.account_type in (1, 2) else query.where(model.account_id == ctx.caller.account_id)


@command("listVirtualMachines")
def list_virtual_machines(ctx: Context) -> dict:
    q = _own(ctx, _named(ctx, select(m.VirtualMachine), m.VirtualMachine), m.VirtualMachine)
    q = _by(ctx, q, m.VirtualMachine.zone_id, m.Zone, "zoneid")
    if ctx.caller.is_root_admin:
        q = _by(ctx, q, m.VirtualMachine.host_id, m.Host, "hostid")
    if ctx.params.get("state"):
        q = q.where(m.VirtualMachine.state == ctx.params.get("state"))
    full = ctx.caller.is_root_admin
    return listing(ctx, q, "virtualmachine", lambda vm: responses.virtual_machine(vm, full))


@command("listVolumes")
def list_volumes(ctx: Context) -> dict:
    q = _own(ctx, _named(ctx, select(m.Volume), m.Volume), m.Volume)
    q = _by(ctx, q, m.Volume.vm_id, m.VirtualMachine, "virtualmachineid")
    q = _by(ctx, q, m.Volume.zone_id, m.Zone, "zoneid")
    if ctx.caller.is_root_admin:
        q = _by(ctx, q, m.Volume.pool_id, m.StoragePool, "storageid")
    if ctx.params.get("type"):
        q = q.where(m.Volume.volume_type == ctx.params.get("type").upper())
    full = ctx.caller.is_root_admin
    return listing(ctx, q, "volume", lambda v: responses.volume(v, full))
