"""Validation of everything a caller sends: request bodies, pool objects, ids and file names.

Each ``parse_*`` function takes the decoded JSON body and returns a normalized dict, or raises
``InvalidRequest`` naming the offending field. Nothing here touches the disk or any state, so a
rejected request changes nothing. The command-type table ``COMMAND_PARSERS`` is the one place
that says which command types the agent understands.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from agent.errors import InvalidRequest

MIGRATE_VOLUME = "MigrateVolumeCommand"
POOL_TYPES = ("SMB", "Filesystem")
FAULT_TYPES = ("fail", "hang")
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


def _string(body: dict, field: str, *, required: bool = True) -> str | None:
    value = body.get(field)
    if value is None:
        if required:
            raise InvalidRequest(f"missing field '{field}'")
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"field '{field}' must be a non-empty string")
    return value


def _identifier(body: dict, field: str) -> str:
    value = _string(body, field)
    if not _ID_RE.match(value):
        raise InvalidRequest(
            f"field '{field}' must be 1-200 characters of letters, digits and '._:@-', got {value!r}"
        )
    return value


def _int(body: dict, field: str, *, minimum: int, default: int | None = None) -> int:
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
        uuid = _identifier(value, "uuid")
        path = _string(value, "path")
        pool_type = _string(value, "type", required=False)
        host = value.get("host")
        if host is not None and not isinstance(host, str):
            raise InvalidRequest("field 'host' must be a string")
        port = _int(value, "port", minimum=0, default=0)
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
        "id": _identifier(body, "id"),
        "path": check_file_name(body.get("path"), "path"),
        "pool": parse_pool(body.get("pool"), "pool"),
        "size": _int(body, "size", minimum=0),
        "vm": vm,
    }


def _parse_migrate_volume(body: dict) -> dict:
    src = parse_pool(body.get("srcPool"), "srcPool")
    dst = parse_pool(body.get("pool"), "pool")
    if src["uuid"] == dst["uuid"] or pool_relative_parts(src["path"]) == pool_relative_parts(dst["path"]):
        raise InvalidRequest("'srcPool' and 'pool' are the same pool; nothing to migrate")
    vm = body.get("attachedVmName")
    if vm is not None and not isinstance(vm, str):
        raise InvalidRequest("field 'attachedVmName' must be a string or null")
    wait = body.get("wait")
    if wait is not None and (isinstance(wait, bool) or not isinstance(wait, (int, float)) or wait < 0):
        raise InvalidRequest("field 'wait' must be a non-negative number of seconds")
    return {
        "volumeId": _identifier(body, "volumeId"),
        "volumePath": check_file_name(body.get("volumePath"), "volumePath"),
        "srcPool": src,
        "pool": dst,
        "attachedVmName": vm,
        "wait": wait,
    }


COMMAND_PARSERS: dict[str, Callable[[dict], dict]] = {MIGRATE_VOLUME: _parse_migrate_volume}


def parse_command(body: Any) -> dict:
    """Body of ``POST {base}/commands``: ``id`` and ``type`` plus the type's own fields."""
    body = require_object(body)
    command_id = _identifier(body, "id")
    command_type = _string(body, "type")
    parser = COMMAND_PARSERS.get(command_type)
    if parser is None:
        known = ", ".join(sorted(COMMAND_PARSERS))
        raise InvalidRequest(f"unknown command type {command_type!r}; this agent runs: {known}")
    return {"id": command_id, "type": command_type, **parser(body)}


def parse_fault(body: Any) -> dict:
    """Body of ``POST {base}/faults`` (a test hook of the simulated backend)."""
    body = require_object(body)
    fault_type = _string(body, "type")
    if fault_type not in FAULT_TYPES:
        raise InvalidRequest(f"field 'type' must be one of {', '.join(FAULT_TYPES)}, got {fault_type!r}")
    command = _string(body, "command", required=False) or MIGRATE_VOLUME
    if command not in COMMAND_PARSERS:
        raise InvalidRequest(f"field 'command' names an unknown command type {command!r}")
    volume_id = _string(body, "volumeId", required=False)
    message = body.get("message")
    if message is not None and not isinstance(message, str):
        raise InvalidRequest("field 'message' must be a string")
    if message is None and fault_type == "fail":
        message = f"simulated failure injected into {command}"
    return {
        "type": fault_type,
        "command": command,
        "volumeId": volume_id,
        "message": message,
        "times": _int(body, "times", minimum=1, default=1),
    }
