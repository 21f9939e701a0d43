"""CloudStack response objects (the dicts inside the JSON envelopes), built from models.

Field names follow CloudStack 4.4 (see the reference); ``full=True`` is the root-admin (Full)
view. Extra fields we add never rename or drop a CloudStack one.
"""
from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import models as m

ROOT_DOMAIN_ID = "7f1b8c52-6d1e-4f2b-9a55-000000000001"  # the single domain: ROOT
MIB = 1024 * 1024


def cs_date(value: datetime | None) -> str | None:
    """CloudStack's wire date format, e.g. 2014-08-01T10:14:51+0000 (we keep UTC)."""
    return value.strftime("%Y-%m-%dT%H:%M:%S+0000") if value else None


def _tags(text: str) -> str:
    return ",".join(t for t in (text or "").split(",") if t)


def _owner(account: m.Account) -> dict:
    return {"account": account.name, "domainid": ROOT_DOMAIN_ID, "domain": "ROOT"}


def zone(z: m.Zone) -> dict:
    return {"id": z.uuid, "name": z.name, "allocationstate": "Enabled", "networktype": "Advanced",
            "localstorageenabled": True, "securitygroupsenabled": False}


def pod(p: m.Pod) -> dict:
    return {"id": p.uuid, "name": p.name, "zoneid": p.zone.uuid, "zonename": p.zone.name,
            "allocationstate": "Enabled"}


def cluster(c: m.Cluster) -> dict:
    return {"id": c.uuid, "name": c.name, "zoneid": c.zone.uuid, "zonename": c.zone.name,
            "podid": c.pod.uuid, "podname": c.pod.name, "hypervisortype": c.hypervisor,
            "clustertype": "CloudManaged", "allocationstate": "Enabled", "managedstate": "Managed"}


def host(h: m.Host, allocated_cpu_mhz: int = 0, allocated_memory: int = 0) -> dict:
    return host_fields(h.uuid, h.name, h.status, h.ip_address, h.zone.uuid, h.zone.name, h.pod.uuid,
                       h.pod.name, h.cluster.uuid, h.cluster.name, h.hypervisor, h.hypervisor_version,
                       h.cpu_number, h.cpu_speed, h.memory, h.host_tags, h.resource_state, h.created,
                       allocated_cpu_mhz, allocated_memory)


def host_fields(uuid: str, name: str, status: str, ip_address: str, zone_uuid: str, zone_name: str,
                pod_uuid: str, pod_name: str, cluster_uuid: str, cluster_name: str, hypervisor: str,
                hypervisor_version: str, cpu_number: int, cpu_speed: int, memory: int, host_tags: str,
                resource_state: str, created: datetime | None, allocated_cpu_mhz: int = 0,
                allocated_memory: int = 0) -> dict:
    """A host response from plain values (listing hundreds of hosts needs no ORM objects)."""
    total_cpu = cpu_number * cpu_speed
    return {
        "id": uuid, "name": name, "state": status, "type": "Routing",
        "ipaddress": ip_address, "zoneid": zone_uuid, "zonename": zone_name,
        "podid": pod_uuid, "podname": pod_name, "clusterid": cluster_uuid,
        "clustername": cluster_name, "clustertype": "CloudManaged", "hypervisor": hypervisor,
        "hypervisorversion": hypervisor_version, "version": "4.4.0",
        "cpunumber": cpu_number, "cpuspeed": cpu_speed,
        "cpuallocated": f"{(100.0 * allocated_cpu_mhz / total_cpu) if total_cpu else 0:.2f}%",
        "cpuwithoverprovisioning": str(float(total_cpu)),
        "memorytotal": memory, "memoryallocated": allocated_memory,
        "hosttags": _tags(host_tags), "resourcestate": resource_state,
        "islocalstorageactive": True, "created": cs_date(created), "events": "",
        "hahost": False,
    }


def storage_pool(p: m.StoragePool, allocated: int = 0, overprovision: float = 2.0) -> dict:
    out = {
        "id": p.uuid, "name": p.name, "zoneid": p.zone.uuid, "zonename": p.zone.name,
        "ipaddress": "127.0.0.1", "path": p.path, "created": cs_date(p.created),
        "type": p.pool_type, "disksizetotal": p.capacity_bytes, "disksizeallocated": allocated,
        "tags": _tags(p.tags), "state": p.state, "scope": p.scope, "hypervisor": "Hyperv",
        "overprovisionfactor": f"{overprovision:g}",
    }
    if p.pod is not None:
        out.update(podid=p.pod.uuid, podname=p.pod.name)
    if p.cluster is not None:
        out.update(clusterid=p.cluster.uuid, clustername=p.cluster.name)
    if p.host is not None:  # extension: which host a local pool belongs to
        out.update(hostid=p.host.uuid, hostname=p.host.name)
    return out


def disk_offering(d: m.DiskOffering) -> dict:
    return {"id": d.uuid, "name": d.name, "displaytext": d.display_text or d.name,
            "disksize": d.disk_size // (1024 ** 3), "iscustomized": d.disk_size == 0,
            "storagetype": "local" if d.use_local_storage else "shared",
            "tags": _tags(d.tags), "created": cs_date(d.created)}


def service_offering(s: m.ServiceOffering) -> dict:
    return {"id": s.uuid, "name": s.name, "displaytext": s.display_text or s.name,
            "cpunumber": s.cpu_number, "cpuspeed": s.cpu_speed, "memory": s.memory // MIB,
            "hosttags": _tags(s.host_tags),
            "storagetype": "local" if s.use_local_storage else "shared",
            "created": cs_date(s.created)}


def hypervisor_capability(c: m.HypervisorCapability) -> dict:
    return {"id": c.uuid, "hypervisor": c.hypervisor_type, "hypervisorversion": c.hypervisor_version,
            "maxguestslimit": c.max_guests_limit, "maxdatavolumeslimit": c.max_data_volumes_limit,
            "maxhostspercluster": c.max_hosts_per_cluster,
            "securitygroupenabled": bool(c.security_group_enabled),
            "storagemotionenabled": bool(c.storage_migration_supported)}


def virtual_machine(vm: m.VirtualMachine, full: bool = True) -> dict:
    so = vm.service_offering
    out = {
        "id": vm.uuid, "name": vm.name, "displayname": vm.display_name, "state": vm.state,
        "hypervisor": vm.hypervisor, "zoneid": vm.zone.uuid, "zonename": vm.zone.name,
        "serviceofferingid": so.uuid, "serviceofferingname": so.name,
        "cpunumber": so.cpu_number, "cpuspeed": so.cpu_speed, "memory": so.memory // MIB,
        "created": cs_date(vm.created), "haenable": False, **_owner(vm.account),
    }
    if full:
        out["instancename"] = vm.instance_name
        if vm.host is not None:
            out.update(hostid=vm.host.uuid, hostname=vm.host.name)
    return out


def volume(v: m.Volume, full: bool = True) -> dict:
    d = v.disk_offering
    out = {
        "id": v.uuid, "name": v.name, "zoneid": v.zone.uuid, "zonename": v.zone.name,
        "type": v.volume_type, "deviceid": v.device_id, "size": v.size,
        "created": cs_date(v.created), "state": v.state,
        "storagetype": "local" if v.pool.is_local else "shared",
        "diskofferingid": d.uuid, "diskofferingname": d.name,
        "diskofferingdisplaytext": d.display_text or d.name,
        "destroyed": False, "isextractable": False, "displayvolume": True, "quiescevm": False,
        **_owner(v.account),
    }
    if v.vm is not None:
        out.update(virtualmachineid=v.vm.uuid, vmname=v.vm.name,
                   vmdisplayname=v.vm.display_name, vmstate=v.vm.state)
        out.update(serviceofferingid=v.vm.service_offering.uuid,
                   serviceofferingname=v.vm.service_offering.name)
    if full:
        out.update(path=v.path, hypervisor="Hyperv", storage=v.pool.name, storageid=v.pool.uuid)
    return out


def async_job(job: m.AsyncJob, account: m.Account, user: m.User,
              queue_position: int | None = None) -> dict:
    return async_job_fields(job, account.uuid, user.uuid, queue_position)


def async_job_fields(job, account_uuid: str, user_uuid: str, queue_position: int | None = None) -> dict:
    """``async_job`` from anything with the job's column attributes (a model or a Core row)."""
    out = {
        "accountid": account_uuid, "userid": user_uuid, "cmd": job.cmd,
        "jobstatus": job.status, "jobprocstatus": job.proc_status,
        "jobresultcode": job.result_code, "created": cs_date(job.created), "jobid": job.uuid,
    }
    # CloudStack 4.4 leaves these out for migrations; we name the object the job moves (an
    # addition clients may ignore), taken from the request it was created with.
    params = json.loads(job.params or "{}")
    if params.get("virtualmachineid"):
        out.update(jobinstancetype="VirtualMachine", jobinstanceid=params["virtualmachineid"])
    elif params.get("volumeid"):
        out.update(jobinstancetype="Volume", jobinstanceid=params["volumeid"])
    if job.result is not None:
        out["jobresulttype"] = "object"
        out["jobresult"] = json.loads(job.result)
    if job.status == 0:  # extras while pending; CloudStack clients ignore them
        out.update(phase=job.phase, bytesdone=job.bytes_done, bytestotal=job.bytes_total,
                   rate=round(job.rate or 0.0, 1))
        if job.eta is not None:
            out["eta"] = round(job.eta, 1)
        if queue_position is not None:
            out["queueposition"] = queue_position
        if job.progress:
            out["volumes"] = json.loads(job.progress)
        if job.cancel_requested_at is not None:
            out["cancelrequested"] = True
        if job.status_text:
            out["statustext"] = job.status_text
    return out


def event(e: m.Event, account: m.Account, user: m.User) -> dict:
    return {"id": e.uuid, "type": e.type, "state": e.state, "level": e.level,
            "description": e.description, "account": account.name, "username": user.username,
            "domainid": ROOT_DOMAIN_ID, "domain": "ROOT", "created": cs_date(e.created),
            "parentid": None}


def configuration(c: m.Configuration) -> dict:
    return {"name": c.name, "value": c.value, "defaultvalue": c.default_value,
            "category": c.category, "description": c.description, "isdynamic": True}


def allocated_by_pool(session: Session, pool_ids: list[int]) -> dict[int, int]:
    """Bytes of volumes recorded on each pool (CloudStack's disksizeallocated), as the triggers of
    migration 0008 keep them."""
    if not pool_ids:
        return {}
    rows = session.execute(select(m.StoragePool.id, m.StoragePool.allocated_bytes)
                           .where(m.StoragePool.id.in_(pool_ids)))
    return {pid: int(total or 0) for pid, total in rows}
