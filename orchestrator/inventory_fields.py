"""Checks of single fields of an inventory entry, each raising ``InventoryError`` that names
the offending place (``zones[0] (demo).pods[0].clusters[1].hosts[2] (hv-b3).cpu.speed``).

``_entries`` walks a list and labels its items with their index and name; the others check one
key (strings, choices, counts, sizes, tags, CPU, Hyper-V version, IP address, agent URL) and
return its value, with the format's default when the key is optional and absent.
"""
from __future__ import annotations

import ipaddress

from .errors import InventoryError
from .inventory_format import CPU_KEYS, HYPERVISOR_VERSIONS, parse_size


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
