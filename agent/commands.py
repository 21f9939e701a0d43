"""The command store of one host: command records, their states, and their files on disk.

A record is the public view of a command (``id``, ``type``, ``state``, ``bytesDone``,
``bytesTotal``, ``error``, ``result``, ``created``, ``updated``); next to it the store keeps the
validated request that created it, so a restarted agent knows which files the command touched.
Each command is one JSON file ``<dir>/<id>.json`` (``{"record": ..., "request": ...}``) written
atomically. State changes are compare-and-set under one lock, so an abort and a finishing worker
can never both win. Progress is kept in memory and written to disk at most once a second.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

from agent.persist import read_json, utc_now_iso, write_json_atomic

ACCEPTED = "accepted"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
ABORTED = "aborted"
TERMINAL = frozenset({SUCCEEDED, FAILED, ABORTED})

PROGRESS_PERSIST_INTERVAL = 1.0  # seconds; progress is informational, state changes are not


class CommandStore:
    """Records of one host's commands, idempotent by command id and persisted one file each."""

    def __init__(self, directory: Path):
        self._dir = directory
        self._dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._entries: dict[str, dict] = {}
        self._persisted_at: dict[str, float] = {}
        for stale in self._dir.glob(".*.tmp"):
            stale.unlink(missing_ok=True)  # a crash mid-write leaves only a temp file behind
        for path in sorted(self._dir.glob("*.json")):
            entry = read_json(path)
            if isinstance(entry, dict) and "record" in entry and "request" in entry:
                self._entries[entry["record"]["id"]] = entry

    def _persist(self, command_id: str) -> None:
        write_json_atomic(self._dir / f"{command_id}.json", self._entries[command_id])
        self._persisted_at[command_id] = time.monotonic()

    def create(self, request: dict) -> tuple[dict, bool]:
        """Record a new ``accepted`` command; if the id exists, return its record and ``False``."""
        command_id = request["id"]
        with self._lock:
            if command_id in self._entries:
                return dict(self._entries[command_id]["record"]), False
            now = utc_now_iso()
            record = {
                "id": command_id,
                "type": request["type"],
                "state": ACCEPTED,
                "bytesDone": 0,
                "bytesTotal": 0,
                "error": None,
                "result": None,
                "created": now,
                "updated": now,
            }
            self._entries[command_id] = {"record": record, "request": dict(request)}
            self._persist(command_id)
            return dict(record), True

    def get(self, command_id: str) -> dict | None:
        """A copy of the record, or ``None`` for an unknown id."""
        with self._lock:
            entry = self._entries.get(command_id)
            return dict(entry["record"]) if entry else None

    def request(self, command_id: str) -> dict:
        """The validated request that created the command."""
        with self._lock:
            return self._entries[command_id]["request"]

    def transition(self, command_id: str, expected: frozenset[str] | set[str], **changes) -> dict | None:
        """Compare-and-set: apply ``changes`` (incl. ``state``) only if the state is in ``expected``.

        Returns the new record, or ``None`` (and changes nothing) when the state was not expected.
        """
        with self._lock:
            record = self._entries[command_id]["record"]
            if record["state"] not in expected:
                return None
            record.update(changes)
            record["updated"] = utc_now_iso()
            self._persist(command_id)
            return dict(record)

    def progress(self, command_id: str, done: int, total: int) -> None:
        """Record copy progress of a running command (persisted at most once a second)."""
        with self._lock:
            record = self._entries[command_id]["record"]
            if record["state"] != RUNNING:
                return
            record["bytesDone"], record["bytesTotal"] = done, total
            record["updated"] = utc_now_iso()
            last = self._persisted_at.get(command_id, 0.0)
            if time.monotonic() - last >= PROGRESS_PERSIST_INTERVAL:
                self._persist(command_id)

    def ids_in(self, states: frozenset[str] | set[str]) -> list[str]:
        """Ids of the commands currently in one of ``states``, oldest first."""
        with self._lock:
            entries = [e["record"] for e in self._entries.values() if e["record"]["state"] in states]
            return [r["id"] for r in sorted(entries, key=lambda r: (r["created"], r["id"]))]
