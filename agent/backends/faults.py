"""Injected faults of the simulated backend: a test hook, not part of the real Hyper-V contract.

A fault says that the next matching command(s) either ``fail`` (with a message, before any byte
is copied) or ``hang`` (stay ``running`` without progress until aborted). Faults match on the
command type and, when given, the volume id; each one is used ``times`` times, oldest first.
They live in memory only: a restarted agent starts with none.
"""
from __future__ import annotations

import itertools
import threading


class FaultBook:
    """The pending faults of one host."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[dict] = []
        self._ids = itertools.count(1)

    def add(self, fault: dict) -> dict:
        """Register a validated fault (see ``validation.parse_fault``); returns it with its ``id``."""
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
        """The pending faults, oldest first, with the ``times`` still left."""
        with self._lock:
            return [dict(f) for f in self._faults]

    def take(self, command_type: str, volume_id: str | None) -> dict | None:
        """Consume one use of the oldest fault matching this command, if any."""
        with self._lock:
            for fault in self._faults:
                if fault["command"] != command_type:
                    continue
                if fault["volumeId"] is not None and fault["volumeId"] != volume_id:
                    continue
                fault["times"] -= 1
                if fault["times"] <= 0:
                    self._faults.remove(fault)
                return dict(fault)
            return None
