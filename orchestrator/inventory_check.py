"""Validation of a whole inventory: ``_check`` walks the dict and builds the ``_Plan``, the
inventory flattened into lists whose references are indexes, which ``inventory_load`` writes.

Everything is checked before anything is written: names unique per kind (pods and clusters per
parent, volumes per VM), references to existing objects, and the placement rules a VM and its
volumes must already obey (pool scope, local or shared storage, storage and host tags).
``validate`` is ``_check`` for callers that only want the verdict.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .inventory_fields import (_count, _at, _choice, _cpu, _entries, _fail, _ip, _keys, _name, _size,
                               _string, _tags, _url, _version)
from .inventory_format import (ACCOUNT_KEYS, ADMIN_ACCOUNT, CLUSTER_KEYS, DISK_OFFERING_KEYS,
                               HOST_KEYS, HOST_STATUSES, HYPERVISOR, POD_KEYS, POOL_KEYS,
                               POOL_STATES, RESOURCE_STATES, ROLES, SERVICE_OFFERING_KEYS,
                               STORAGE_KINDS, TOP_KEYS, VM_KEYS, VM_STATES, VOLUME_KEYS,
                               VOLUME_TYPES, ZONE_KEYS, format_size)

_WHAT = {"zones": "zone", "hosts": "host", "pools": "pool", "disk_offerings": "disk offering",
         "service_offerings": "service offering", "accounts": "account", "vms": "VM"}


@dataclass
class _Plan:
    """A validated inventory, flattened; references are indexes into the other lists."""

    zones: list = field(default_factory=list)
    pods: list = field(default_factory=list)
    clusters: list = field(default_factory=list)
    hosts: list = field(default_factory=list)
    pools: list = field(default_factory=list)
    disk_offerings: list = field(default_factory=list)
    service_offerings: list = field(default_factory=list)
    accounts: list = field(default_factory=list)
    vms: list = field(default_factory=list)
    volumes: list = field(default_factory=list)
    index: dict = field(default_factory=dict)  # kind -> {name: index}
    paths: dict = field(default_factory=dict)  # pool path -> pool where

    def add(self, kind: str, record: dict) -> int:
        """Append a named record, refusing a second one with the same name."""
        names = self.index.setdefault(kind, {})
        records = getattr(self, kind)
        first = names.get(record["name"])
        if first is not None:
            _fail(_at(record["where"], "name"), f"duplicate {_WHAT[kind]} name '{record['name']}' "
                                                f"(first at {records[first]['where']})")
        names[record["name"]] = len(records)
        records.append(record)
        return len(records) - 1

    def find(self, kind: str, name, where: str) -> int:
        """The index of the record called ``name``, which must exist."""
        found = self.index.get(kind, {}).get(name) if isinstance(name, str) else None
        if found is None:
            _fail(where, f"no {_WHAT[kind]} named {name!r}")
        return found


def _check_pool(plan: _Plan, pool, where: str, scope: str, zone: int, pod=None, cluster=None,
                host=None) -> None:
    _keys(pool, where, POOL_KEYS, ("name", "capacity"))
    name = _name(pool, where)
    local = scope == "HOST"
    default_path = f"/local/{plan.hosts[host]['name']}/{name}" if local else f"/shared/{name}"
    path = _string(pool.get("path", default_path), _at(where, "path"), longest=512)
    plan.add("pools", dict(
        name=name, where=where, scope=scope, is_local=local, zone=zone, pod=pod, cluster=cluster,
        host=host, pool_type="Filesystem" if local else "SMB", path=path,
        tags=_tags(pool, "tags", where), capacity=_size(pool["capacity"], _at(where, "capacity")),
        state=_choice(pool, "state", where, POOL_STATES, "Up")))
    if path in plan.paths:
        # Two pools in one directory would see each other's volume files.
        _fail(_at(where, "path"), f"{path!r} is already the path of {plan.paths[path]}")
    plan.paths[path] = where


def _check_host(plan: _Plan, host, where: str, zone: int, pod: int, cluster: int) -> None:
    _keys(host, where, HOST_KEYS, ("name", "hypervisor_version", "cpu", "memory"))
    cpu_number, cpu_speed = _cpu(host, where)
    index = plan.add("hosts", dict(
        name=_name(host, where), where=where, zone=zone, pod=pod, cluster=cluster,
        version=_version(host, where), cpu_number=cpu_number, cpu_speed=cpu_speed,
        memory=_size(host["memory"], _at(where, "memory")),
        host_tags=_tags(host, "host_tags", where), ip_address=_ip(host, where),
        agent_url=_url(host, where),
        status=_choice(host, "status", where, HOST_STATUSES, "Up"),
        resource_state=_choice(host, "resource_state", where, RESOURCE_STATES, "Enabled"),
        max_storage_migrations=(_count(host["max_storage_migrations"], _at(where, "max_storage_migrations"))
                                if host.get("max_storage_migrations") is not None else None)))
    for pool, pool_where in _entries(host, "local_pools", where):
        _check_pool(plan, pool, pool_where, "HOST", zone, pod, cluster, host=index)


def _check_cluster(plan: _Plan, cluster, where: str, zone: int, pod: int, names: dict) -> None:
    _keys(cluster, where, CLUSTER_KEYS, ("name",))
    name = _name(cluster, where)
    if name in names:
        _fail(_at(where, "name"), f"duplicate cluster name '{name}' in this pod (first at {names[name]})")
    names[name] = where
    hypervisor = cluster.get("hypervisor", HYPERVISOR)
    if hypervisor != HYPERVISOR:
        _fail(_at(where, "hypervisor"), f"{hypervisor!r} is not supported; only {HYPERVISOR} is")
    index = len(plan.clusters)
    plan.clusters.append(dict(name=name, where=where, zone=zone, pod=pod))
    for host, host_where in _entries(cluster, "hosts", where):
        _check_host(plan, host, host_where, zone, pod, index)
    for pool, pool_where in _entries(cluster, "pools", where):
        _check_pool(plan, pool, pool_where, "CLUSTER", zone, pod, cluster=index)


def _check_zone(plan: _Plan, zone, where: str) -> None:
    _keys(zone, where, ZONE_KEYS, ("name",))
    index = plan.add("zones", dict(name=_name(zone, where), where=where))
    pod_names: dict = {}
    for pod, pod_where in _entries(zone, "pods", where):
        _keys(pod, pod_where, POD_KEYS, ("name",))
        name = _name(pod, pod_where)
        if name in pod_names:
            _fail(_at(pod_where, "name"), f"duplicate pod name '{name}' in this zone "
                                          f"(first at {pod_names[name]})")
        pod_names[name] = pod_where
        pod_index = len(plan.pods)
        plan.pods.append(dict(name=name, where=pod_where, zone=index))
        cluster_names: dict = {}
        for cluster, cluster_where in _entries(pod, "clusters", pod_where):
            _check_cluster(plan, cluster, cluster_where, index, pod_index, cluster_names)
    for pool, pool_where in _entries(zone, "pools", where):
        _check_pool(plan, pool, pool_where, "ZONE", index)


def _check_offerings(plan: _Plan, data: dict) -> None:
    for offering, where in _entries(data, "disk_offerings", ""):
        _keys(offering, where, DISK_OFFERING_KEYS, ("name",))
        name = _name(offering, where)
        plan.add("disk_offerings", dict(
            name=name, where=where,
            local=_choice(offering, "storage", where, STORAGE_KINDS, "shared") == "local",
            tags=_tags(offering, "tags", where),
            size=_size(offering.get("size", 0), _at(where, "size"), minimum=0),
            display_text=_string(offering.get("display_text", name), _at(where, "display_text"),
                                 longest=4096)))
    for offering, where in _entries(data, "service_offerings", ""):
        _keys(offering, where, SERVICE_OFFERING_KEYS, ("name", "cpu", "memory"))
        name = _name(offering, where)
        cpu_number, cpu_speed = _cpu(offering, where)
        plan.add("service_offerings", dict(
            name=name, where=where, cpu_number=cpu_number, cpu_speed=cpu_speed,
            memory=_size(offering["memory"], _at(where, "memory")),
            host_tags=_tags(offering, "host_tags", where),
            local=_choice(offering, "storage", where, STORAGE_KINDS, "shared") == "local",
            display_text=_string(offering.get("display_text", name), _at(where, "display_text"),
                                 longest=4096)))


def _check_accounts(plan: _Plan, data: dict) -> None:
    for account, where in _entries(data, "accounts", ""):
        _keys(account, where, ACCOUNT_KEYS, ("name",))
        name = _name(account, where)
        role = _choice(account, "role", where, tuple(ROLES), "user")
        if name == ADMIN_ACCOUNT and role != "admin":
            _fail(_at(where, "role"), f"'{ADMIN_ACCOUNT}' is the root admin account; its role is admin")
        plan.add("accounts", dict(name=name, where=where, account_type=ROLES[role]))


def _describe(tags: list) -> str:
    return f"[{', '.join(tags)}]" if tags else "none"


def _check_placement(plan: _Plan, vm: dict, volume: dict, where: str) -> None:
    """A volume's pool must be reachable from the VM's host and fit its offerings."""
    pool = plan.pools[volume["pool"]]
    host = plan.hosts[vm["host"]]
    here = _at(where, "pool")
    if pool["scope"] == "HOST" and pool["host"] != vm["host"]:
        _fail(here, f"local pool '{pool['name']}' belongs to host "
                    f"'{plan.hosts[pool['host']]['name']}', not to the VM's host '{host['name']}'")
    if pool["scope"] == "CLUSTER" and pool["cluster"] != host["cluster"]:
        _fail(here, f"pool '{pool['name']}' is in cluster '{plan.clusters[pool['cluster']]['name']}', "
                    f"not in the VM host's cluster '{plan.clusters[host['cluster']]['name']}'")
    if pool["scope"] == "ZONE" and pool["zone"] != host["zone"]:
        _fail(here, f"zone-wide pool '{pool['name']}' is in zone '{plan.zones[pool['zone']]['name']}', "
                    f"not in the VM's zone '{plan.zones[host['zone']]['name']}'")
    offering = plan.disk_offerings[volume["disk_offering"]]
    locality = "local" if pool["is_local"] else "shared"
    if offering["local"] != pool["is_local"]:
        _fail(here, f"disk offering '{offering['name']}' is for "
                    f"{'local' if offering['local'] else 'shared'} storage but pool "
                    f"'{pool['name']}' is {locality}")
    if not set(offering["tags"]) <= set(pool["tags"]):
        _fail(here, f"disk offering '{offering['name']}' needs storage tags {_describe(offering['tags'])} "
                    f"but pool '{pool['name']}' has {_describe(pool['tags'])}")
    service = plan.service_offerings[vm["service_offering"]]
    if volume["type"] == "ROOT" and service["local"] != pool["is_local"]:
        _fail(here, f"ROOT volume on {locality} pool '{pool['name']}' but service offering "
                    f"'{service['name']}' uses {'local' if service['local'] else 'shared'} storage")


def _check_volume(plan: _Plan, vm_index: int, volume, where: str) -> dict:
    _keys(volume, where, VOLUME_KEYS, ("name", "type", "pool", "disk_offering"))
    name = _name(volume, where)
    kind = volume["type"]
    if not isinstance(kind, str) or kind not in VOLUME_TYPES:
        _fail(_at(where, "type"), f"{kind!r} is not one of ROOT, DATADISK (or DATA)")
    pool = plan.find("pools", volume["pool"], _at(where, "pool"))
    offering_index = plan.find("disk_offerings", volume["disk_offering"],
                               _at(where, "disk_offering"))
    offering = plan.disk_offerings[offering_index]
    if "size" in volume:
        size = _size(volume["size"], _at(where, "size"))
        if offering["size"] and size != offering["size"]:
            _fail(_at(where, "size"), f"{format_size(size)} differs from the size of disk offering "
                                      f"'{offering['name']}' ({format_size(offering['size'])})")
    elif offering["size"]:
        size = offering["size"]
    else:
        _fail(where, f"missing required field 'size' (disk offering '{offering['name']}' "
                     "has no fixed size)")
    record = dict(vm=vm_index, name=name, type=VOLUME_TYPES[kind], pool=pool, size=size,
                  disk_offering=offering_index)
    _check_placement(plan, plan.vms[vm_index], record, where)
    return record


def _check_vm(plan: _Plan, vm, where: str) -> None:
    _keys(vm, where, VM_KEYS, ("name", "host", "service_offering", "volumes"))
    host = plan.find("hosts", vm["host"], _at(where, "host"))
    service = plan.find("service_offerings", vm["service_offering"], _at(where, "service_offering"))
    account = vm.get("account", ADMIN_ACCOUNT)
    if account != ADMIN_ACCOUNT:
        plan.find("accounts", account, _at(where, "account"))
    needed = plan.service_offerings[service]["host_tags"]
    if not set(needed) <= set(plan.hosts[host]["host_tags"]):
        _fail(_at(where, "service_offering"),
              f"service offering '{vm['service_offering']}' needs host tags {_describe(needed)} "
              f"but host '{vm['host']}' has {_describe(plan.hosts[host]['host_tags'])}")
    index = plan.add("vms", dict(name=_name(vm, where), where=where, host=host,
                                 service_offering=service, account=account,
                                 state=_choice(vm, "state", where, VM_STATES, "Running")))
    volumes, names = [], {}
    # Volumes are named by index only, as in "vms[2] (web-3).volumes[0].pool".
    for volume, volume_where in _entries(vm, "volumes", where, named=False):
        record = _check_volume(plan, index, volume, volume_where)
        if record["name"] in names:
            _fail(_at(volume_where, "name"), f"duplicate volume name '{record['name']}' in this VM "
                                             f"(first at {names[record['name']]})")
        names[record["name"]] = volume_where
        volumes.append(record)
    roots = sum(1 for record in volumes if record["type"] == "ROOT")
    if roots != 1:
        _fail(_at(where, "volumes"), f"needs exactly one ROOT volume, found {roots}")
    device = 1
    for record in volumes:
        record["device_id"] = 0 if record["type"] == "ROOT" else device
        device += record["type"] != "ROOT"
    plan.volumes.extend(volumes)


def _check(data) -> _Plan:
    """Validate everything and return the flattened plan that ``load`` writes."""
    _keys(data, "inventory", TOP_KEYS, ())
    plan = _Plan()
    for zone, where in _entries(data, "zones", ""):
        _check_zone(plan, zone, where)
    _check_offerings(plan, data)
    _check_accounts(plan, data)
    for vm, where in _entries(data, "vms", ""):
        _check_vm(plan, vm, where)
    return plan


def validate(data: dict) -> None:
    """Raise InventoryError, naming the entry, unless ``data`` is a complete, consistent inventory."""
    _check(data)
