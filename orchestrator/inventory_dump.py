"""Dumping the database as an inventory dict, the inverse of ``load``: loading the dump into
an empty database recreates it, and ``to_yaml`` of it reads like a hand-written file.

Optional fields are written only when they differ from the format's defaults, sizes in their
largest exact unit. What the format cannot express (a VM without any host, a detached volume,
an unknown account type) raises ``InventoryError`` rather than dumping something wrong.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .errors import InventoryError
from .inventory_format import ADMIN_ACCOUNT, ROLES, format_size
from .models import (Account, Cluster, DiskOffering, Host, Pod, ServiceOffering, StoragePool,
                     VirtualMachine, Volume, Zone)


def _rows(session: Session, model) -> list:
    return session.execute(select(model.__table__).order_by(model.id)).all()


def _split(tags: str) -> list[str]:
    return [tag for tag in tags.split(",") if tag]


def _pool_entry(pool, default_path: str) -> dict:
    entry = dict(name=pool.name)
    if pool.tags:
        entry["tags"] = _split(pool.tags)
    entry["capacity"] = format_size(pool.capacity_bytes)
    if pool.path != default_path:
        entry["path"] = pool.path
    if pool.state != "Up":
        entry["state"] = pool.state
    return entry


def _host_entry(host) -> dict:
    entry = dict(name=host.name, hypervisor_version=host.hypervisor_version,
                 cpu=dict(number=host.cpu_number, speed=host.cpu_speed),
                 memory=format_size(host.memory))
    optional = [("host_tags", _split(host.host_tags), []), ("ip_address", host.ip_address, "127.0.0.1"),
                ("agent_url", host.agent_url, None), ("status", host.status, "Up"),
                ("resource_state", host.resource_state, "Enabled"),
                ("max_storage_migrations", host.max_storage_migrations, None)]
    entry.update({key: value for key, value, default in optional if value != default})
    return entry


def _offering_entry(offering, disk: bool) -> dict:
    entry = dict(name=offering.name)
    if disk:
        entry["storage"] = "local" if offering.use_local_storage else "shared"
        if offering.tags:
            entry["tags"] = _split(offering.tags)
        if offering.disk_size:
            entry["size"] = format_size(offering.disk_size)
    else:
        entry["cpu"] = dict(number=offering.cpu_number, speed=offering.cpu_speed)
        entry["memory"] = format_size(offering.memory)
        if offering.host_tags:
            entry["host_tags"] = _split(offering.host_tags)
        entry["storage"] = "local" if offering.use_local_storage else "shared"
    if offering.display_text and offering.display_text != offering.name:
        entry["display_text"] = offering.display_text
    return entry


def _dump_tree(session: Session) -> tuple[list, dict, dict]:
    """Zones down to hosts and pools; also host and pool names by id for the VMs."""
    zones, pods, clusters, hosts = {}, {}, {}, {}
    for zone in _rows(session, Zone):
        zones[zone.id] = dict(name=zone.name, pods=[])
    for pod in _rows(session, Pod):
        pods[pod.id] = dict(name=pod.name, clusters=[])
        zones[pod.zone_id]["pods"].append(pods[pod.id])
    for cluster in _rows(session, Cluster):
        clusters[cluster.id] = dict(name=cluster.name, hypervisor=cluster.hypervisor, hosts=[])
        pods[cluster.pod_id]["clusters"].append(clusters[cluster.id])
    host_names = {}
    for host in _rows(session, Host):
        hosts[host.id] = _host_entry(host)
        host_names[host.id] = host.name
        clusters[host.cluster_id]["hosts"].append(hosts[host.id])
    pool_names = {}
    for pool in _rows(session, StoragePool):
        pool_names[pool.id] = pool.name
        if pool.scope == "HOST":
            entry = _pool_entry(pool, f"/local/{host_names[pool.host_id]}/{pool.name}")
            hosts[pool.host_id].setdefault("local_pools", []).append(entry)
        elif pool.scope == "CLUSTER":
            clusters[pool.cluster_id].setdefault("pools", []).append(
                _pool_entry(pool, f"/shared/{pool.name}"))
        else:
            zones[pool.zone_id].setdefault("pools", []).append(_pool_entry(pool, f"/shared/{pool.name}"))
    return list(zones.values()), host_names, pool_names


def _dump_vms(session: Session, host_names: dict, pool_names: dict, accounts: dict,
              disk_names: dict, service_names: dict) -> list:
    vms = {}
    for vm in _rows(session, VirtualMachine):
        host_id = vm.host_id or vm.last_host_id
        if host_id is None:
            raise InventoryError(f"VM '{vm.name}' has neither a host nor a last host; "
                                 "the inventory format cannot express it")
        entry = dict(name=vm.name, host=host_names[host_id],
                     service_offering=service_names[vm.service_offering_id],
                     # The recorded host and pools hold the VM during a migration, so it dumps as
                     # running there.
                     state="Stopped" if vm.state == "Stopped" else "Running")
        if accounts[vm.account_id] != ADMIN_ACCOUNT:
            entry["account"] = accounts[vm.account_id]
        entry["volumes"] = []
        vms[vm.id] = entry
    volumes = session.execute(select(Volume.__table__).order_by(Volume.vm_id, Volume.device_id,
                                                                Volume.id)).all()
    for volume in volumes:
        if volume.vm_id is None:
            raise InventoryError(f"volume '{volume.name}' ({volume.uuid}) is not attached to a VM; "
                                 "the inventory format cannot express it")
        vms[volume.vm_id]["volumes"].append(dict(
            name=volume.name, type=volume.volume_type, pool=pool_names[volume.pool_id],
            size=format_size(volume.size), disk_offering=disk_names[volume.disk_offering_id]))
    return list(vms.values())


def dump(session: Session) -> dict:
    """The database as an inventory dict; ``load`` of it into an empty database recreates it."""
    zones, host_names, pool_names = _dump_tree(session)
    disk = _rows(session, DiskOffering)
    service = _rows(session, ServiceOffering)
    roles = {code: role for role, code in ROLES.items()}
    account_rows = _rows(session, Account)
    accounts = {a.id: a.name for a in account_rows}
    account_entries = []
    for account in account_rows:
        if account.name == ADMIN_ACCOUNT:
            continue
        if account.account_type not in roles:
            raise InventoryError(f"account '{account.name}' has account type {account.account_type}, "
                                 "which the inventory format cannot express")
        account_entries.append(dict(name=account.name, role=roles[account.account_type]))
    return dict(
        zones=zones,
        disk_offerings=[_offering_entry(o, disk=True) for o in disk],
        service_offerings=[_offering_entry(o, disk=False) for o in service],
        accounts=account_entries,
        vms=_dump_vms(session, host_names, pool_names, accounts,
                      {o.id: o.name for o in disk}, {o.id: o.name for o in service}))
