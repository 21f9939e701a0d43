"""Injected faults of the simulated backend: a test hook, not part of the real Hyper-V contract.

A fault says what happens to the next matching command(s): ``fail`` (with a message, before any
byte of the command - or of the named volume - is copied), ``hang`` (stay ``running`` without
progress until aborted), ``delay`` (wait ``seconds`` before copying), ``slow`` (copy at
``bandwidth`` MiB/s) or ``crash`` (the agent process exits with ``os._exit`` after the copy and
switch-over, before the command's success is recorded or answered).

Faults match on the command type and, when given, a volume id or a volume index (the position
in a ``MigrateWithStorageCommand``'s ``volumeToPool``; such a fault hits that volume, after the
ones before it were copied). ``nth`` skips the first ``nth - 1`` matching commands; each fault is
then used ``times`` times, oldest fault first. A fault plan (``--fault-plan FILE``) is a list of
faults loaded at start; faults live in memory only, so a restarted agent starts with its plan.
"""
from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path
from typing import Any

from agent.command_bodies import COMMAND_PARSERS, MIGRATE_VOLUME
from agent.errors import InvalidRequest
from agent.validation import check_host_name, int_field, number_field, require_object, string_field

FAULT_TYPES = ("fail", "hang", "delay", "slow", "crash")
CRASH_EXIT_CODE = 70


def parse_fault(body: Any) -> dict:
    """Body of ``POST {base}/faults`` (one entry of a fault plan)."""
    body = require_object(body)
    fault_type = string_field(body, "type")
    if fault_type not in FAULT_TYPES:
        raise InvalidRequest(f"field 'type' must be one of {', '.join(FAULT_TYPES)}, got {fault_type!r}")
    command = string_field(body, "command", required=False) or MIGRATE_VOLUME
    if command not in COMMAND_PARSERS:
        raise InvalidRequest(f"field 'command' names an unknown command type {command!r}")
    message = body.get("message")
    if message is not None and not isinstance(message, str):
        raise InvalidRequest("field 'message' must be a string")
    if message is None and fault_type == "fail":
        message = f"simulated failure injected into {command}"
    fault = {
        "type": fault_type,
        "command": command,
        "volumeId": string_field(body, "volumeId", required=False),
        "volumeIndex": int_field(body, "volumeIndex", minimum=0) if body.get("volumeIndex") is not None else None,
        "message": message,
        "nth": int_field(body, "nth", minimum=1, default=1),
        "times": int_field(body, "times", minimum=1, default=1),
    }
    if fault_type == "delay":
        fault["seconds"] = number_field(body, "seconds", positive=True)
        if fault["seconds"] is None:
            raise InvalidRequest("a 'delay' fault needs field 'seconds'")
    if fault_type == "slow":
        fault["bandwidth"] = number_field(body, "bandwidth", positive=True)
        if fault["bandwidth"] is None:
            raise InvalidRequest("a 'slow' fault needs field 'bandwidth' (MiB/s)")
    return fault


def parse_fault_plan(data: Any) -> list[tuple[str | None, dict]]:
    """A fault plan: a JSON list of faults (or ``{"faults": [...]}``); each may name a ``host``.

    Returns ``(host or None for every host, fault)`` pairs, in plan order.
    """
    if isinstance(data, dict):
        data = data.get("faults")
    if not isinstance(data, list):
        raise InvalidRequest("a fault plan is a JSON list of faults or an object {\"faults\": [...]}")
    plan = []
    for i, item in enumerate(data):
        try:
            item = require_object(item)
            host = check_host_name(item["host"]) if item.get("host") is not None else None
            plan.append((host, parse_fault({k: v for k, v in item.items() if k != "host"})))
        except InvalidRequest as exc:
            raise InvalidRequest(f"fault plan entry {i}: {exc.message}") from None
    return plan


def load_fault_plan(path: str | Path) -> list[tuple[str | None, dict]]:
    """Read and validate a fault plan file (raises ``InvalidRequest`` or ``OSError``)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"fault plan {path} is not valid JSON: {exc}") from None
    return parse_fault_plan(data)


class FaultBook:
    """The pending faults of one host."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[dict] = []
        self._ids = itertools.count(1)

    def add(self, fault: dict) -> dict:
        """Register a validated fault (see ``parse_fault``); returns it with its ``id``."""
        with self._lock:
            entry = {"id": next(self._ids), **fault}
            self._faults.append(entry)
            return dict(entry)

    def clear(self) -> int:
        """Drop every pending fault; returns how many there were."""
        with self._lock:
            count = len(self._faults)
            self._faults.clear()
            return count

    def list(self) -> list[dict]:
        """The pending faults, oldest first, with the ``nth`` and ``times`` still left."""
        with self._lock:
            return [dict(f) for f in self._faults]

    def take(self, command_type: str, volume_ids: list[str]) -> dict | None:
        """Consume one use of the oldest fault matching this command, if any.

        The answer carries ``at``: the index of the volume the fault hits, or ``None`` when it
        hits the command as a whole.
        """
        with self._lock:
            for fault in self._faults:
                at = self._target(fault, command_type, volume_ids)
                if at is False:
                    continue
                if fault["nth"] > 1:  # this command is one of the first nth - 1: let it pass
                    fault["nth"] -= 1
                    continue
                fault["times"] -= 1
                if fault["times"] <= 0:
                    self._faults.remove(fault)
                return {**fault, "at": at}
            return None

    @staticmethod
    def _target(fault: dict, command_type: str, volume_ids: list[str]):
        """``False`` if the fault does not match; else the volume index it hits (or ``None``)."""
        if fault["command"] != command_type:
            return False
        at = None
        if fault["volumeId"] is not None:
            if fault["volumeId"] not in volume_ids:
                return False
            at = volume_ids.index(fault["volumeId"])
        if fault["volumeIndex"] is not None:
            if fault["volumeIndex"] >= len(volume_ids) or at not in (None, fault["volumeIndex"]):
                return False
            at = fault["volumeIndex"]
        return at
