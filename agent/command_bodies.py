"""Validation of command bodies (``POST {base}/commands``), one parser per command type.

``COMMAND_PARSERS`` is the one place that says which command types the agent runs:
``MigrateVolumeCommand`` (one volume to another pool, the VM stays on its host) and
``MigrateWithStorageCommand`` (a VM to another host, its volumes to the pools of a volume->pool
map). Each parser returns the normalized request that the command store keeps next to the
record, or raises ``InvalidRequest`` naming the offending field; nothing is recorded then.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent.errors import InvalidRequest
from agent.validation import (
    check_file_name,
    check_host_name,
    identifier_field,
    number_field,
    parse_pool,
    parse_vm_volume,
    pool_relative_parts,
    require_object,
    same_pool,
    string_field,
)

MIGRATE_VOLUME = "MigrateVolumeCommand"
MIGRATE_WITH_STORAGE = "MigrateWithStorageCommand"


def _wait(body: dict) -> float | None:
    try:
        return number_field(body, "wait")
    except InvalidRequest:
        raise InvalidRequest("field 'wait' must be a non-negative number of seconds") from None


def _parse_migrate_volume(body: dict) -> dict:
    src = parse_pool(body.get("srcPool"), "srcPool")
    dst = parse_pool(body.get("pool"), "pool")
    if same_pool(src, dst):
        raise InvalidRequest("'srcPool' and 'pool' are the same pool; nothing to migrate")
    vm = body.get("attachedVmName")
    if vm is not None and not isinstance(vm, str):
        raise InvalidRequest("field 'attachedVmName' must be a string or null")
    wait = _wait(body)
    return {
        "volumeId": identifier_field(body, "volumeId"),
        "volumePath": check_file_name(body.get("volumePath"), "volumePath"),
        "srcPool": src,
        "pool": dst,
        "attachedVmName": vm,
        "wait": wait,
    }


def _parse_migrate_with_storage(body: dict) -> dict:
    vm = body.get("vm")
    if not isinstance(vm, dict):
        raise InvalidRequest("field 'vm' must be an object with 'name' and 'uuid'")
    try:
        vm = {"name": identifier_field(vm, "name"), "uuid": identifier_field(vm, "uuid")}
    except InvalidRequest as exc:
        raise InvalidRequest(f"vm: {exc.message}") from None
    target = check_host_name(string_field(body, "tgtHost"))
    url = string_field(body, "tgtAgentUrl")
    if not url.startswith(("http://", "https://")) or any(c.isspace() for c in url):
        raise InvalidRequest(f"field 'tgtAgentUrl' must be an http(s) URL, got {url!r}")
    mapping = body.get("volumeToPool")
    if not isinstance(mapping, list) or not mapping:
        raise InvalidRequest("field 'volumeToPool' must be a non-empty list of {'volume', 'pool'} objects")
    entries, seen_ids, seen_files = [], set(), set()
    for i, item in enumerate(mapping):
        field = f"volumeToPool[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"field '{field}' must be an object with 'volume' and 'pool'")
        volume = parse_vm_volume(item.get("volume"), f"{field}.volume")
        dst = parse_pool(item.get("pool"), f"{field}.pool")
        final = (pool_relative_parts(dst["path"]), volume["path"])
        if volume["id"] in seen_ids:
            raise InvalidRequest(f"field '{field}' names volume {volume['id']} a second time")
        if final in seen_files:
            raise InvalidRequest(f"field '{field}': two volumes would end as the same file {volume['path']}")
        seen_ids.add(volume["id"])
        seen_files.add(final)
        entries.append({"volume": volume, "pool": dst})
    return {"vm": vm, "tgtHost": target, "tgtAgentUrl": url.rstrip("/"), "volumeToPool": entries,
            "wait": _wait(body)}


COMMAND_PARSERS: dict[str, Callable[[dict], dict]] = {
    MIGRATE_VOLUME: _parse_migrate_volume,
    MIGRATE_WITH_STORAGE: _parse_migrate_with_storage,
}


def parse_command(body: Any) -> dict:
    """Body of ``POST {base}/commands``: ``id`` and ``type`` plus the type's own fields."""
    body = require_object(body)
    command_id = identifier_field(body, "id")
    command_type = string_field(body, "type")
    parser = COMMAND_PARSERS.get(command_type)
    if parser is None:
        known = ", ".join(sorted(COMMAND_PARSERS))
        raise InvalidRequest(f"unknown command type {command_type!r}; this agent runs: {known}")
    return {"id": command_id, "type": command_type, **parser(body)}


def moved_volumes(request: dict) -> list[dict]:
    """The entries of a ``MigrateWithStorageCommand`` whose volume really changes pool."""
    return [e for e in request["volumeToPool"] if not same_pool(e["volume"]["pool"], e["pool"])]


def command_volume_ids(request: dict) -> list[str]:
    """Every volume a command names, in the command's order."""
    if request["type"] == MIGRATE_VOLUME:
        return [request["volumeId"]]
    return [e["volume"]["id"] for e in request["volumeToPool"]]


def describe(request: dict) -> str:
    """One log-friendly phrase naming what a command moves: volume(s), pools, VM, hosts."""
    if request["type"] == MIGRATE_VOLUME:
        return (f"volume={request['volumeId']} vm={request['attachedVmName']} "
                f"pools={request['srcPool']['uuid']}->{request['pool']['uuid']}")
    moves = ",".join(f"{e['volume']['id']}:{e['volume']['pool']['uuid']}->{e['pool']['uuid']}"
                     for e in request["volumeToPool"])
    return f"vm={request['vm']['name']} tgtHost={request['tgtHost']} volumes={moves}"
