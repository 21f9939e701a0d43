"""Validation of what a caller sends: field primitives, pool objects, ids, file names, and the
bodies of the volume, VM, pool and guest endpoints.

Each ``parse_*`` function takes the decoded JSON body and returns a normalized dict, or raises
``InvalidRequest`` naming the offending field. Nothing here touches the disk or any state, so a
rejected request changes nothing. Command bodies are parsed in ``agent.command_bodies``, fault
bodies in ``agent.backends.faults``; both build on the primitives here.
"""
from __future__ import annotations

import re
from typing import Any

from agent.errors import InvalidRequest

POOL_TYPES = ("SMB", "Filesystem")
PARTIAL_SUFFIX = ".partial"

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}$")
_HOST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def require_object(body: Any) -> dict:
    """The body must be a JSON object (``None`` means it was absent or not valid JSON)."""
    if body is None:
        raise InvalidRequest("request body is missing or is not valid JSON")
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    return body


def check_host_name(name: Any) -> str:
    """A host name must be usable as one URL path segment and one directory name."""
    if not isinstance(name, str) or not _HOST_RE.match(name):
        raise InvalidRequest(f"invalid host name {name!r}: use letters, digits, '.', '_', '-'")
    return name


def string_field(body: dict, field: str, *, required: bool = True) -> str | None:
    """A non-empty string field (``None`` when absent and not required)."""
    value = body.get(field)
    if value is None:
        if required:
            raise InvalidRequest(f"missing field '{field}'")
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"field '{field}' must be a non-empty string")
    return value


def identifier_field(body: dict, field: str) -> str:
    """An id usable as a file name: 1-200 characters of letters, digits and ``._:@-``."""
    value = string_field(body, field)
    if not _ID_RE.match(value):
        raise InvalidRequest(
            f"field '{field}' must be 1-200 characters of letters, digits and '._:@-', got {value!r}"
        )
    return value


def int_field(body: dict, field: str, *, minimum: int, default: int | None = None) -> int:
    """An integer field of at least ``minimum`` (``default`` when absent)."""
    value = body.get(field, default)
    if value is None:
        raise InvalidRequest(f"missing field '{field}'")
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"field '{field}' must be an integer")
    if value < minimum:
        raise InvalidRequest(f"field '{field}' must be at least {minimum}, got {value}")
    return value


def check_file_name(value: Any, field: str) -> str:
    """A volume path is a bare file name inside a pool directory, never a path or a temp name."""
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"field '{field}' must be a non-empty file name")
    if (
        "/" in value
        or "\\" in value
        or "\x00" in value
        or value.startswith(".")
        or value.endswith(PARTIAL_SUFFIX)
        or len(value) > 255
    ):
        raise InvalidRequest(
            f"field '{field}' must be a plain file name (no '/', '\\', leading '.', "
            f"or '{PARTIAL_SUFFIX}' suffix), got {value!r}"
        )
    return value


def pool_relative_parts(path: str) -> tuple[str, ...]:
    """The directory components of a pool path under the data root (leading '/' dropped)."""
    return tuple(part for part in path.split("/") if part)


def parse_pool(value: Any, field: str) -> dict:
    """A pool object (CloudStack's StorageFilerTO): uuid and path required, the rest informational."""
    if not isinstance(value, dict):
        raise InvalidRequest(f"field '{field}' must be a pool object with 'uuid' and 'path'")
    try:
        uuid = identifier_field(value, "uuid")
        path = string_field(value, "path")
        pool_type = string_field(value, "type", required=False)
        host = value.get("host")
        if host is not None and not isinstance(host, str):
            raise InvalidRequest("field 'host' must be a string")
        port = int_field(value, "port", minimum=0, default=0)
    except InvalidRequest as exc:
        raise InvalidRequest(f"{field}: {exc.message}") from None
    parts = pool_relative_parts(path)
    if not parts or any(p in (".", "..") or p.startswith(".") or "\x00" in p for p in parts):
        raise InvalidRequest(
            f"{field}: 'path' must name a directory like '/shared/pool-a' "
            f"(no '.', '..' or hidden components), got {path!r}"
        )
    return {"uuid": uuid, "path": path, "type": pool_type, "host": host, "port": port}


def parse_volume_create(body: Any) -> dict:
    """Body of ``POST {base}/volumes``."""
    body = require_object(body)
    vm = body.get("vm")
    if vm is not None and not isinstance(vm, str):
        raise InvalidRequest("field 'vm' must be a string or null")
    return {
        "id": identifier_field(body, "id"),
        "path": check_file_name(body.get("path"), "path"),
        "pool": parse_pool(body.get("pool"), "pool"),
        "size": int_field(body, "size", minimum=0),
        "vm": vm,
    }


def number_field(body: dict, field: str, *, default: float | None = None, positive: bool = False) -> float | None:
    """An optional non-negative (or positive) number; ``default`` when absent."""
    value = body.get(field, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (positive and value == 0):
        kind = "positive" if positive else "non-negative"
        raise InvalidRequest(f"field '{field}' must be a {kind} number")
    return value


def same_pool(a: dict, b: dict) -> bool:
    """Two pools are the same if their uuids are equal or their paths name the same directory."""
    return a["uuid"] == b["uuid"] or pool_relative_parts(a["path"]) == pool_relative_parts(b["path"])


def parse_vm_volume(value: Any, field: str) -> dict:
    """A volume as commands and VM registrations name it: ``{"id", "path", "pool"}``."""
    if not isinstance(value, dict):
        raise InvalidRequest(f"field '{field}' must be an object with 'id', 'path' and 'pool'")
    try:
        return {"id": identifier_field(value, "id"), "path": check_file_name(value.get("path"), "path"),
                "pool": parse_pool(value.get("pool"), "pool")}
    except InvalidRequest as exc:
        raise InvalidRequest(f"{field}: {exc.message}") from None


def parse_vm(body: Any) -> dict:
    """Body of ``POST {base}/vms``: a VM running on this host and its volumes."""
    body = require_object(body)
    name, vm_uuid = identifier_field(body, "name"), identifier_field(body, "uuid")
    volumes = body.get("volumes", [])
    if not isinstance(volumes, list):
        raise InvalidRequest("field 'volumes' must be a list")
    parsed = [parse_vm_volume(v, f"volumes[{i}]") for i, v in enumerate(volumes)]
    if len({v["id"] for v in parsed}) != len(parsed):
        raise InvalidRequest("field 'volumes' names a volume twice")
    return {"name": name, "uuid": vm_uuid, "volumes": parsed}


def parse_pool_ref(body: Any) -> dict:
    """Body of ``POST {base}/pools/offline|online``: ``{"uuid": ...}`` or ``{"path": ...}``."""
    body = require_object(body)
    if body.get("uuid") is not None:
        return {"uuid": identifier_field(body, "uuid"), "path": None}
    if body.get("path") is None:
        raise InvalidRequest("name the pool by field 'uuid' or field 'path'")
    return {"uuid": None, "path": parse_pool({"uuid": "by-path", "path": body.get("path")}, "path")["path"]}


def parse_guest(body: Any) -> float:
    """Body of ``POST {base}/guest``: ``{"writesPerSecond": <number >= 0>}`` (0 = off)."""
    body = require_object(body)
    if body.get("writesPerSecond") is None:
        raise InvalidRequest("missing field 'writesPerSecond'")
    return float(number_field(body, "writesPerSecond"))
