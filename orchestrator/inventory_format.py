"""The vocabulary of the inventory format: the keys each entry may have, the values its
choices allow, the CloudStack codes they map to, and sizes (``8MiB`` and back).

Plain tables and two pure functions, shared by the YAML text, the checks, the loader and the
dump; this module imports none of them. The format is documented in ``docs/inventory.md``.
"""
from __future__ import annotations

import re

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
             "agent_url", "status", "resource_state", "max_storage_migrations", "local_pools")
POOL_KEYS = ("name", "capacity", "tags", "path", "state")
CPU_KEYS = ("number", "speed")
DISK_OFFERING_KEYS = ("name", "storage", "tags", "size", "display_text")
SERVICE_OFFERING_KEYS = ("name", "cpu", "memory", "host_tags", "storage", "display_text")
ACCOUNT_KEYS = ("name", "role")
VM_KEYS = ("name", "host", "service_offering", "state", "account", "volumes")
VOLUME_KEYS = ("name", "type", "pool", "size", "disk_offering")


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
