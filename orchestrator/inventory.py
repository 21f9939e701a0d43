"""The inventory file: the cloud (zones, pods, clusters, hosts, pools, offerings, accounts, VMs and
their volumes) as YAML, checked completely before anything is written, loaded in bulk, and dumped
back in the same format.

``parse`` turns text into a dict, ``validate`` checks a dict and raises ``InventoryError`` naming
the offending entry (``vms[2] (web-3).volumes[0].pool: no pool named 'a-silver'``), ``load``
inserts a valid inventory through a caller's session without committing, ``load_file`` does all
three in one unit of work, ``dump`` reads the database back and ``generate`` (in
``inventory_generate``) builds synthetic inventories of any size. The format is documented field
by field in ``docs/inventory.md``.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from sqlalchemy import String, cast, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .errors import InventoryError
from .inventory_generate import generate
from .models import (Account, Cluster, DiskOffering, Host, Pod, ServiceOffering, StoragePool,
                     VirtualMachine, Volume, Zone, new_uuid, utcnow)

__all__ = ["parse", "validate", "load", "load_file", "dump", "generate", "to_yaml",
           "parse_size", "format_size", "ADMIN_ACCOUNT"]

ADMIN_ACCOUNT = "admin"
HYPERVISOR = "Hyperv"
HYPERVISOR_VERSIONS = ("6.2", "6.3")  # Windows Server 2012 and 2012 R2
HOST_STATUSES = ("Up", "Down", "Disconnected")
RESOURCE_STATES = ("Enabled", "Disabled", "Maintenance")
POOL_STATES = ("Up", "Disabled", "Maintenance")
VM_STATES = ("Running", "Stopped")
STORAGE_KINDS = ("shared", "local")
ROLES = {"admin": 1, "domainadmin": 2, "user": 0}  # CloudStack account types
VOLUME_TYPES = {"ROOT": "ROOT", "DATADISK": "DATADISK", "DATA": "DATADISK"}
SIZE_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}

TOP_KEYS = ("zones", "disk_offerings", "service_offerings", "accounts", "vms")
ZONE_KEYS = ("name", "pods", "pools")
POD_KEYS = ("name", "clusters")
CLUSTER_KEYS = ("name", "hypervisor", "hosts", "pools")
HOST_KEYS = ("name", "hypervisor_version", "cpu", "memory", "host_tags", "ip_address",
             "agent_url", "status", "resource_state", "local_pools")
POOL_KEYS = ("name", "capacity", "tags", "path", "state")
CPU_KEYS = ("number", "speed")
DISK_OFFERING_KEYS = ("name", "storage", "tags", "size", "display_text")
SERVICE_OFFERING_KEYS = ("name", "cpu", "memory", "host_tags", "storage", "display_text")
ACCOUNT_KEYS = ("name", "role")
VM_KEYS = ("name", "host", "service_offering", "state", "account", "volumes")
VOLUME_KEYS = ("name", "type", "pool", "size", "disk_offering")


# --------------------------------------------------------------------------- YAML text

_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: big files
_YamlDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _StrictLoader(_YamlLoader):
    """Safe loader that refuses duplicate keys, which plain YAML silently overwrites."""


def _construct_strict_mapping(loader, node):
    loader.flatten_mapping(node)  # resolves "<<" merge keys before we look for duplicates
    seen = set()
    for key_node, _value in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, (str, int, float, bool)) and key in seen:
            raise InventoryError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor("tag:yaml.org,2002:map", _construct_strict_mapping)


class _InventoryDumper(_YamlDumper):
    """Block style for structure, flow style for leaves (pools, volumes, tags) to stay readable."""

    def ignore_aliases(self, data) -> bool:
        # A dict used twice (say, one cpu mapping) would otherwise come out as &id001 / *id001.
        return True


def _is_scalar(value) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _represent_dict(dumper, data):
    flow = all(_is_scalar(v) or (isinstance(v, list) and all(map(_is_scalar, v)))
               or (isinstance(v, dict) and all(map(_is_scalar, v.values())))
               for v in data.values())
    return dumper.represent_mapping("tag:yaml.org,2002:map", list(data.items()), flow_style=flow)


def _represent_list(dumper, data):
    flow = all(map(_is_scalar, data))
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_InventoryDumper.add_representer(dict, _represent_dict)
_InventoryDumper.add_representer(list, _represent_list)


def parse(text: str) -> dict:
    """YAML text to an inventory dict (empty text is an empty inventory). Does not validate."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        raise InventoryError(f"inventory is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InventoryError("inventory: the top level must be a mapping "
                             f"with keys {', '.join(TOP_KEYS)}")
    return data


def to_yaml(data: dict) -> str:
    """An inventory dict as YAML text in the documented layout (what ``dump -o`` writes)."""
    return yaml.dump(data, Dumper=_InventoryDumper, sort_keys=False, width=120,
                     allow_unicode=True, default_flow_style=False)


# --------------------------------------------------------------------------- sizes

_SIZE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB|TiB)?\s*$")


def parse_size(value) -> int:
    """Bytes from an int or a string like ``8MiB``; raises ValueError on anything else."""
    if isinstance(value, bool):
        raise ValueError("must be a size, not a boolean")
    if isinstance(value, int):
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"{value!r} is not a size (an integer of bytes, or a string with "
                         f"unit {', '.join(SIZE_UNITS)}, e.g. '8MiB')")
    return int(match.group(1)) * SIZE_UNITS[match.group(2) or "B"]


def format_size(size: int) -> str | int:
    """The largest exact unit (``8388608`` -> ``'8MiB'``); sizes that fit none stay ints."""
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        if size and size % SIZE_UNITS[unit] == 0:
            return f"{size // SIZE_UNITS[unit]}{unit}"
    return size


# --------------------------------------------------------------------------- field checks

def _fail(where: str, message: str):
    raise InventoryError(f"{where}: {message}")


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _keys(entry, where: str, allowed: tuple, required: tuple) -> dict:
    if not isinstance(entry, dict):
        _fail(where, f"must be a mapping, not {type(entry).__name__}")
    unknown = [k for k in entry if k not in allowed]
    if unknown:
        listed = ", ".join(repr(k) for k in unknown)
        _fail(where, f"unknown key{'s' if len(unknown) > 1 else ''} {listed} "
                     f"(allowed: {', '.join(allowed)})")
    for key in required:
        if key not in entry:
            _fail(where, f"missing required field '{key}'")
    return entry


def _entries(entry: dict, key: str, where: str, named: bool = True):
    """(item, item's where) for the list under ``key``; a missing or null list is empty.

    ``named`` adds the item's name to its where, as in ``hosts[0] (hv-a1)``.
    """
    items = entry.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        _fail(_at(where, key), f"must be a list, not {type(items).__name__}")
    result = []
    for index, item in enumerate(items):
        label = f"{_at(where, key)}[{index}]"
        if named and isinstance(item, dict) and isinstance(item.get("name"), str):
            label += f" ({item['name']})"
        result.append((item, label))
    return result


def _string(value, where: str, longest: int = 255) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(where, f"must be a non-empty string, not {value!r}")
    if len(value) > longest:
        _fail(where, f"must be at most {longest} characters")
    return value


def _name(entry: dict, where: str) -> str:
    return _string(entry["name"], _at(where, "name"))


def _choice(entry: dict, key: str, where: str, choices, default=None):
    value = entry.get(key, default)
    if value not in choices:
        _fail(_at(where, key), f"{value!r} is not one of {', '.join(choices)}")
    return value


def _count(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        _fail(where, f"must be a positive integer, not {value!r}")
    return value


def _size(value, where: str, minimum: int = 1) -> int:
    try:
        size = parse_size(value)
    except ValueError as exc:
        _fail(where, str(exc))
    if size < minimum:
        _fail(where, f"must be {'more than 0' if minimum else 'at least 0'} bytes, not {value!r}")
    return size


def _tags(entry: dict, key: str, where: str) -> list[str]:
    tags = entry.get(key)
    if tags is None:
        return []
    if not isinstance(tags, list):
        _fail(_at(where, key), f"must be a list of strings, not {tags!r}")
    for tag in tags:
        # Tags are stored comma-separated, as in CloudStack, so a comma would split one tag in two.
        if not isinstance(tag, str) or not tag.strip() or "," in tag:
            _fail(_at(where, key), f"{tag!r} is not a tag (a non-empty string without commas)")
    if len(set(tags)) != len(tags):
        _fail(_at(where, key), "lists a tag twice")
    return list(tags)


def _cpu(entry: dict, where: str) -> tuple[int, int]:
    cpu = _keys(entry["cpu"], _at(where, "cpu"), CPU_KEYS, CPU_KEYS)
    return (_count(cpu["number"], _at(where, "cpu.number")),
            _count(cpu["speed"], _at(where, "cpu.speed")))


def _version(entry: dict, where: str) -> str:
    value = entry["hypervisor_version"]
    here = _at(where, "hypervisor_version")
    if not isinstance(value, str):
        # YAML reads an unquoted 6.3 as a float; "6.30" and "6.3" would then be the same thing.
        _fail(here, f"must be a string; quote it: \"{value}\"")
    if value not in HYPERVISOR_VERSIONS:
        _fail(here, f"{value!r} is not a known Hyper-V version "
                    f"({', '.join(HYPERVISOR_VERSIONS)})")
    return value


def _ip(entry: dict, where: str) -> str:
    value = entry.get("ip_address", "127.0.0.1")
    try:
        if not isinstance(value, str):
            raise ValueError(value)  # ip_address() would also take an int
        return str(ipaddress.ip_address(value))
    except ValueError:
        _fail(_at(where, "ip_address"), f"{value!r} is not an IP address")


def _url(entry: dict, where: str) -> str | None:
    value = entry.get("agent_url")
    if value is not None and (not isinstance(value, str)
                              or not value.startswith(("http://", "https://"))):
        _fail(_at(where, "agent_url"), f"{value!r} is not an http(s) URL")
    return value


# --------------------------------------------------------------------------- the plan

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
        resource_state=_choice(host, "resource_state", where, RESOURCE_STATES, "Enabled")))
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


# --------------------------------------------------------------------------- load

def _chunks(items: list, size: int = 500):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _refuse_existing(session: Session, plan: _Plan) -> None:
    """Loading adds to the cloud; anything already named in the database is a conflict."""
    kinds = [("zones", Zone), ("hosts", Host), ("pools", StoragePool),
             ("disk_offerings", DiskOffering), ("service_offerings", ServiceOffering),
             ("vms", VirtualMachine)]
    conflicts = []
    for kind, model in kinds:
        records = getattr(plan, kind)
        names = [record["name"] for record in records]
        for chunk in _chunks(names, 900):  # stays under SQLite's old limit of 999 parameters
            for name in session.scalars(select(model.name).where(model.name.in_(chunk))):
                where = records[plan.index[kind][name]]["where"]
                conflicts.append(f"{where}: a {_WHAT[kind]} named '{name}' already exists")
    if conflicts:
        more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
        raise InventoryError(conflicts[0] + more)


def _ensure_accounts(session: Session, plan: _Plan, now) -> tuple[dict, int]:
    """Account name -> id, creating the root admin and the listed accounts when missing."""
    wanted = [dict(name=ADMIN_ACCOUNT, where="accounts (root admin)", account_type=1)]
    wanted += [a for a in plan.accounts if a["name"] != ADMIN_ACCOUNT]
    ids, created = {}, 0
    for account in wanted:
        row = session.execute(select(Account.id, Account.account_type)
                              .where(Account.name == account["name"])).first()
        if row is None:
            row = session.execute(insert(Account).returning(Account.id, Account.account_type)
                                  .values(name=account["name"], uuid=new_uuid(), created=now,
                                          account_type=account["account_type"],
                                          state="enabled")).first()
            created += 1
        elif row.account_type != account["account_type"]:
            raise InventoryError(f"{account['where']}: account '{account['name']}' already exists "
                                 f"with account type {row.account_type}, "
                                 f"not {account['account_type']}")
        ids[account["name"]] = row.id
    return ids, created


def _insert(session: Session, model, rows: list[dict], ids: bool = True) -> list[int]:
    """Bulk insert of rows that all have the same keys; returns their ids in order (if ``ids``).

    Core, not ORM, on purpose: the ORM splits rows by which values are None (local pools have a
    host, cluster pools do not), and interleaved rows then go one tiny batch at a time.
    """
    if not rows:
        return []
    table = model.__table__
    connection = session.connection()
    if connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg":
        return _copy(connection, table, rows, ids)
    if not ids:
        session.execute(table.insert(), rows)
        return []
    statement = table.insert().returning(table.c.id, sort_by_parameter_order=True)
    return list(session.execute(statement, rows).scalars())


def _copy(connection, table, rows: list[dict], ids: bool) -> list[int]:
    """PostgreSQL: take ids from the table's sequence, then COPY the rows in.

    Many times faster than multi-row INSERTs for the big tables, whose statement text psycopg
    would otherwise scan once per thousand rows. Runs in the session's own transaction.
    """
    import psycopg
    from psycopg import sql

    cursor = connection.connection.driver_connection.cursor()
    new_ids = []
    if ids:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) "
                       "FROM generate_series(1, %s)", (table.name, len(rows)))
        new_ids = [row[0] for row in cursor.fetchall()]
    columns = list(rows[0])
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name),
        sql.SQL(", ").join(map(sql.Identifier, (["id"] if ids else []) + columns)))
    try:
        with cursor.copy(statement) as copy:
            for index, row in enumerate(rows):
                values = [row[column] for column in columns]
                copy.write_row([new_ids[index], *values] if ids else values)
    except psycopg.IntegrityError as exc:
        # Raw psycopg errors bypass SQLAlchemy; wrap them as it would.
        raise IntegrityError(statement.as_string(cursor), None, exc) from exc
    finally:
        cursor.close()
    return new_ids


def _named(records: list, now, **columns) -> list[dict]:
    """Rows for ``records``: name, a fresh uuid, the creation time and per-record columns."""
    return [dict(name=r["name"], uuid=new_uuid(), created=now,
                 **{column: value(r) for column, value in columns.items()}) for r in records]


def load(session: Session, data: dict) -> dict:
    """Validate ``data`` and insert all of it through ``session`` without committing.

    Returns how many objects of each kind were created (``accounts`` counts only new ones).
    Raises InventoryError, naming the entry, when the inventory is invalid or names something
    that already exists; the caller's rollback then leaves the database as it was.
    """
    plan = _check(data)
    _refuse_existing(session, plan)
    try:
        return _write(session, plan, utcnow())
    except IntegrityError as exc:
        # Someone else wrote one of our names between the check above and our insert.
        raise InventoryError(f"inventory: conflicts with objects written meanwhile: {exc.orig}") from exc


def _write(session: Session, plan: _Plan, now) -> dict:
    accounts, accounts_created = _ensure_accounts(session, plan, now)
    disk_ids, service_ids = _load_offerings(session, plan, now)
    ids = _load_tree(session, plan, now)
    vm_ids = _load_vms(session, plan, now, accounts, ids["zones"], ids["hosts"], service_ids)
    _load_volumes(session, plan, now, accounts, ids["zones"], vm_ids, ids["pools"], disk_ids)
    return dict(**{kind: len(kind_ids) for kind, kind_ids in ids.items()},
                disk_offerings=len(disk_ids), service_offerings=len(service_ids),
                accounts=accounts_created, vms=len(vm_ids), volumes=len(plan.volumes))


def _load_offerings(session: Session, plan: _Plan, now) -> tuple[list, list]:
    disk_ids = _insert(session, DiskOffering, _named(
        plan.disk_offerings, now, display_text=lambda r: r["display_text"],
        use_local_storage=lambda r: r["local"], tags=lambda r: ",".join(r["tags"]),
        disk_size=lambda r: r["size"]))
    service_ids = _insert(session, ServiceOffering, _named(
        plan.service_offerings, now, display_text=lambda r: r["display_text"],
        cpu_number=lambda r: r["cpu_number"], cpu_speed=lambda r: r["cpu_speed"],
        memory=lambda r: r["memory"], host_tags=lambda r: ",".join(r["host_tags"]),
        use_local_storage=lambda r: r["local"]))
    return disk_ids, service_ids


def _load_tree(session: Session, plan: _Plan, now) -> dict:
    """Zones, pods, clusters, hosts and pools; their ids by kind, in plan order."""
    def optional(ids, index):
        return None if index is None else ids[index]

    zones = _insert(session, Zone, _named(plan.zones, now))
    pods = _insert(session, Pod, _named(plan.pods, now, zone_id=lambda r: zones[r["zone"]]))
    clusters = _insert(session, Cluster, _named(
        plan.clusters, now, zone_id=lambda r: zones[r["zone"]], pod_id=lambda r: pods[r["pod"]],
        hypervisor=lambda r: HYPERVISOR))
    hosts = _insert(session, Host, _named(
        plan.hosts, now, zone_id=lambda r: zones[r["zone"]], pod_id=lambda r: pods[r["pod"]],
        cluster_id=lambda r: clusters[r["cluster"]], hypervisor=lambda r: HYPERVISOR,
        hypervisor_version=lambda r: r["version"], cpu_number=lambda r: r["cpu_number"],
        cpu_speed=lambda r: r["cpu_speed"], memory=lambda r: r["memory"],
        host_tags=lambda r: ",".join(r["host_tags"]), ip_address=lambda r: r["ip_address"],
        agent_url=lambda r: r["agent_url"], status=lambda r: r["status"],
        resource_state=lambda r: r["resource_state"]))
    pools = _insert(session, StoragePool, _named(
        plan.pools, now, zone_id=lambda r: zones[r["zone"]],
        pod_id=lambda r: optional(pods, r["pod"]), cluster_id=lambda r: optional(clusters, r["cluster"]),
        host_id=lambda r: optional(hosts, r["host"]), scope=lambda r: r["scope"],
        is_local=lambda r: r["is_local"], pool_type=lambda r: r["pool_type"],
        path=lambda r: r["path"], tags=lambda r: ",".join(r["tags"]),
        capacity_bytes=lambda r: r["capacity"], state=lambda r: r["state"]))
    return dict(zones=zones, pods=pods, clusters=clusters, hosts=hosts, pools=pools)


def _load_vms(session, plan, now, accounts, zone_ids, host_ids, service_ids) -> list[int]:
    def host_of(vm):
        return plan.hosts[vm["host"]]

    # Like CloudStack, a stopped VM has no host, only the last host it ran on.
    vm_ids = _insert(session, VirtualMachine, _named(
        plan.vms, now, display_name=lambda r: r["name"], instance_name=lambda r: "",
        state=lambda r: r["state"], zone_id=lambda r: zone_ids[host_of(r)["zone"]],
        host_id=lambda r: host_ids[r["host"]] if r["state"] == "Running" else None,
        last_host_id=lambda r: host_ids[r["host"]] if r["state"] == "Stopped" else None,
        service_offering_id=lambda r: service_ids[r["service_offering"]],
        account_id=lambda r: accounts[r["account"]], hypervisor=lambda r: HYPERVISOR))
    # CloudStack's instance name needs the VM's own id, known only after the insert.
    table = VirtualMachine.__table__
    name = (literal("i-") + cast(table.c.account_id, String) + literal("-")
            + cast(table.c.id, String) + literal("-VM"))
    for chunk in _chunks(vm_ids, 1000):
        session.execute(update(table).where(table.c.id.in_(chunk)).values(instance_name=name))
    return vm_ids


def _load_volumes(session, plan, now, accounts, zone_ids, vm_ids, pool_ids, disk_ids) -> None:
    rows = []
    for volume in plan.volumes:
        vm = plan.vms[volume["vm"]]
        volume_uuid = new_uuid()
        rows.append(dict(
            name=volume["name"], uuid=volume_uuid, created=now, path=f"{volume_uuid}.vhdx",
            zone_id=zone_ids[plan.hosts[vm["host"]]["zone"]], vm_id=vm_ids[volume["vm"]],
            device_id=volume["device_id"], volume_type=volume["type"],
            pool_id=pool_ids[volume["pool"]], last_pool_id=None, size=volume["size"],
            state="Ready", disk_offering_id=disk_ids[volume["disk_offering"]],
            account_id=accounts[vm["account"]]))
    _insert(session, Volume, rows, ids=False)


def load_file(db, path) -> dict:
    """Parse, validate and load the file at ``path`` in one unit of work, and commit."""
    data = parse(Path(path).read_text(encoding="utf-8"))
    with db.uow() as uow:
        counts = load(uow.session, data)
        uow.commit()
    return counts


# --------------------------------------------------------------------------- dump

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
                ("resource_state", host.resource_state, "Enabled")]
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
