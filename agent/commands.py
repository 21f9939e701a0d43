"""The command store of one host: command records, their states, and their files on disk.

A record is the public view of a command (``id``, ``type``, ``state``, ``bytesDone``,
``bytesTotal``, ``rate``, ``eta``, ``recopiedBytes``, ``error``, ``result``, ``created``,
``updated``; a ``MigrateWithStorageCommand`` also has ``volumes``); next to it the store keeps
the validated request that created it, so a restarted agent knows which files the command
touched, and a few internal marks (e.g. that a switch-over began). Each command is one JSON
file ``<dir>/<id>.json`` (``{"record", "request", "internal"}``) written atomically. State
changes are compare-and-set under one lock, so an abort and a finishing worker can never both
win; each one is logged as one line and written to disk before it returns. A new ``accepted``
record is the exception: it is written when someone is told about it (``get``/``wait_terminal``
with ``durable=True``, which the HTTP answers use) or by its next state change, whichever comes
first. Until then no file of the command was touched (a command starts by becoming ``running``,
durably) and nobody knows the command, so a crash that loses it loses nothing: the client saw no
answer and posts again. A command that starts before its POST is answered (an instant one,
posted with ``?wait``) so skips one durable write. Progress is kept in memory and written to
disk at most once a second; ``rate`` is measured over the last few seconds when the record is
read.
A finished command's record is kept for ``retention`` seconds after it ended (default 7 days),
and at least ``2 x wait + RETENTION_MARGIN``: the longest a job may still ask about it, or post it
again, is its deadline (``wait`` x 2) plus the orchestrator's ``agent.unreachable.giveup``. Then
it is removed from memory and disk (looked for when a command is created, at most once a
minute, and at start), so a long-running agent's memory and start time do not grow with every
command it ever ran.
``wait_terminal`` lets a reader wait (a bounded time) for a command to end, woken by the
transition itself.
"""
from __future__ import annotations

import heapq
import logging
import os
import threading
import time
from collections import deque
from datetime import datetime
from pathlib import Path

from agent.command_bodies import describe
from agent.persist import read_json, utc_now_iso, write_json_atomic

log = logging.getLogger(__name__)

ACCEPTED = "accepted"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
ABORTED = "aborted"
TERMINAL = frozenset({SUCCEEDED, FAILED, ABORTED})

PROGRESS_PERSIST_INTERVAL = 1.0  # seconds; progress is informational, state changes are not
RATE_WINDOW = 3.0  # seconds of progress samples the reported rate is measured over
RETENTION = 7 * 86400.0  # default seconds a finished command's record is kept after it ended
RETENTION_MARGIN = 3600.0  # ... and at least 2 x its wait + this (the orchestrator's giveup, 1800 s)
PRUNE_INTERVAL = 60.0  # seconds between looks for records past their retention


def _epoch(iso: str) -> float:
    """Seconds since the epoch of a record's ISO-8601 time; now when it cannot be read (kept)."""
    try:
        return datetime.fromisoformat(iso).timestamp()
    except (TypeError, ValueError):
        return time.time()


class CommandStore:
    """Records of one host's commands, idempotent by command id and persisted one file each."""

    def __init__(self, directory: Path, host: str = "", retention: float = RETENTION):
        if not retention > 0:
            raise ValueError("the command retention must be a positive number of seconds")
        self._retention = retention
        self._dir = directory
        self._path = str(directory) + os.sep
        self._host = host
        self._dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # notified on every state change
        self._entries: dict[str, dict] = {}
        self._persisted_at: dict[str, float] = {}
        self._unsaved: set[str] = set()  # accepted, in memory only: not yet answered, not started
        self._samples: dict[str, deque] = {}  # command id -> (monotonic time, bytes moved)
        self._expiry: list[tuple[float, str]] = []  # heap of (epoch when it may go, finished command id)
        self._next_prune = time.monotonic() + PRUNE_INTERVAL
        # one temp file for all the commands' writes (under the lock): a rewrite leaves the old
        # version in it, and the next command's first write takes it over (``agent.persist``)
        self._spare = self._path + f".spare.{os.getpid()}.tmp"
        for stale in self._dir.glob(".*.tmp"):
            stale.unlink(missing_ok=True)  # an old version, or what a crash mid-write left
        now, expired = time.time(), 0
        for path in sorted(self._dir.glob("*.json")):
            entry = read_json(path)
            if isinstance(entry, dict) and "record" in entry and "request" in entry:
                record = entry["record"]
                for field, default in (("rate", 0), ("eta", None), ("recopiedBytes", 0)):
                    record.setdefault(field, default)
                entry.setdefault("internal", {})
                if record["state"] in TERMINAL:
                    until = self._expires(entry, _epoch(record.get("updated")))
                    if until <= now:
                        path.unlink(missing_ok=True)
                        expired += 1
                        continue
                    self._expiry.append((until, record["id"]))
                self._entries[record["id"]] = entry
        heapq.heapify(self._expiry)
        if expired:
            log.info("host %s: removed %d finished command record(s) past their retention", host, expired)

    def _expires(self, entry: dict, ended: float) -> float:
        """When a record that ended at ``ended`` (epoch seconds) may be removed."""
        wait = entry["request"].get("wait") or 0
        return ended + max(self._retention, 2 * float(wait) + RETENTION_MARGIN)

    def _prune(self) -> None:
        """Remove the finished records past their retention, from memory and disk (under the lock)."""
        self._next_prune = time.monotonic() + PRUNE_INTERVAL
        now, removed = time.time(), 0
        while self._expiry and self._expiry[0][0] <= now:
            _, command_id = heapq.heappop(self._expiry)
            if self._entries.pop(command_id, None) is None:
                continue
            self._persisted_at.pop(command_id, None)
            removed += 1
            try:
                os.unlink(self._path + command_id + ".json")
            except FileNotFoundError:
                pass
            except OSError as exc:  # left on disk: the next start removes it
                log.warning("host %s command %s: cannot remove its record: %s", self._host, command_id, exc)
        if removed:
            log.info("host %s: removed %d finished command record(s) past their retention", self._host, removed)

    def _persist(self, command_id: str) -> None:
        write_json_atomic(self._path + command_id + ".json", self._entries[command_id], self._spare)
        self._persisted_at[command_id] = time.monotonic()
        self._unsaved.discard(command_id)

    def _durable_view(self, command_id: str, durable: bool) -> dict:
        if durable and command_id in self._unsaved:
            self._persist(command_id)  # about to be told: from now on it must survive a crash
        return self._view(command_id)

    def create(self, request: dict, **extra) -> tuple[dict, bool]:
        """Record a new ``accepted`` command (in memory until told or started, see the module
        docstring); if the id exists, return its record and ``False``."""
        command_id = request["id"]
        with self._lock:
            if time.monotonic() >= self._next_prune:
                self._prune()
            if command_id in self._entries:
                return self._view(command_id), False
            now = utc_now_iso()
            record = {
                "id": command_id, "type": request["type"], "state": ACCEPTED,
                "bytesDone": 0, "bytesTotal": 0, "rate": 0, "eta": None, "recopiedBytes": 0,
                "error": None, "result": None, "created": now, "updated": now, **extra,
            }
            self._entries[command_id] = {"record": record, "request": dict(request), "internal": {}}
            self._unsaved.add(command_id)
            log.info("host %s command %s %s accepted %s", self._host, command_id, request["type"], describe(request))
            return dict(record), True

    def get(self, command_id: str, durable: bool = False) -> dict | None:
        """A copy of the record, or ``None`` for an unknown id; ``durable``: written to disk first
        if it is not yet (the caller is about to tell someone about it)."""
        with self._lock:
            return self._durable_view(command_id, durable) if command_id in self._entries else None

    def _view(self, command_id: str) -> dict:
        record = dict(self._entries[command_id]["record"])
        if record["state"] == RUNNING:
            record["rate"] = self._rate(command_id)
            left = record["bytesTotal"] - record["bytesDone"]
            if not record["bytesTotal"]:
                record["eta"] = None  # the copy has not started: nothing to measure yet
            else:
                record["eta"] = 0.0 if left <= 0 else (round(left / record["rate"], 1) if record["rate"] else None)
        if "volumes" in record:
            record["volumes"] = [dict(v) for v in record["volumes"]]
        return record

    def _rate(self, command_id: str) -> int:
        samples = self._samples.get(command_id)
        if not samples:
            return 0
        now = time.monotonic()
        base = samples[0]
        for sample in samples:
            if sample[0] <= now - RATE_WINDOW:
                base = sample
        span = now - base[0]
        return int((samples[-1][1] - base[1]) / span) if span > 0 else 0

    def wait_terminal(self, command_id: str, timeout: float, durable: bool = False) -> dict | None:
        """The record once the command is terminal, or after ``timeout`` seconds, whichever comes
        first; ``None`` for an unknown id. ``durable`` as for ``get``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while command_id in self._entries and self._entries[command_id]["record"]["state"] not in TERMINAL:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            return self._durable_view(command_id, durable) if command_id in self._entries else None

    def request(self, command_id: str) -> dict:
        """The validated request that created the command."""
        with self._lock:
            return self._entries[command_id]["request"]

    def internal(self, command_id: str) -> dict:
        with self._lock:
            return dict(self._entries[command_id]["internal"])

    def mark(self, command_id: str, **marks) -> None:
        """Durably record internal facts about a command (e.g. that its switch-over began)."""
        with self._lock:
            self._entries[command_id]["internal"].update(marks)
            self._persist(command_id)

    def transition(self, command_id: str, expected: frozenset[str] | set[str], **changes) -> dict | None:
        """Compare-and-set: apply ``changes`` (incl. ``state``) only if the state is in ``expected``.

        Returns the new record, or ``None`` (and changes nothing) when the state was not expected.
        """
        with self._lock:
            entry = self._entries[command_id]
            record = entry["record"]
            old = record["state"]
            if old not in expected:
                return None
            new = changes.get("state", old)
            if new == RUNNING and old != RUNNING:
                self._samples[command_id] = deque([(time.monotonic(), 0)])
            if new in TERMINAL:
                changes.setdefault("rate", 0)
                changes.setdefault("eta", 0.0 if new == SUCCEEDED else None)
                self._samples.pop(command_id, None)
                if old not in TERMINAL:  # a finished command never changes state again
                    heapq.heappush(self._expiry, (self._expires(entry, time.time()), command_id))
            record.update(changes)
            record["updated"] = utc_now_iso()
            self._persist(command_id)
            self._changed.notify_all()
            log.info("host %s command %s %s %s -> %s %s bytes=%d/%d%s", self._host, command_id, record["type"],
                     old, new, describe(entry["request"]), record["bytesDone"], record["bytesTotal"],
                     f" error={record['error']!r}" if record["error"] else
                     (f" result={record['result']}" if record["result"] else ""))
            return self._view(command_id)

    def progress(self, command_id: str, done: int, total: int, *, recopied: int = 0,
                 volumes: list[dict] | None = None) -> None:
        """Record copy progress of a running command (persisted at most once a second)."""
        with self._lock:
            record = self._entries[command_id]["record"]
            if record["state"] != RUNNING:
                return
            record["bytesDone"], record["bytesTotal"], record["recopiedBytes"] = done, total, recopied
            if volumes is not None:
                record["volumes"] = [dict(v) for v in volumes]
            record["updated"] = utc_now_iso()
            samples = self._samples.setdefault(command_id, deque())
            now = time.monotonic()
            samples.append((now, done + recopied))
            while len(samples) > 2 and samples[1][0] <= now - RATE_WINDOW:
                samples.popleft()  # keep one sample older than the window as the base
            last = self._persisted_at.get(command_id, 0.0)
            if now - last >= PROGRESS_PERSIST_INTERVAL:
                self._persist(command_id)

    def ids_in(self, states: frozenset[str] | set[str]) -> list[str]:
        """Ids of the commands currently in one of ``states``, oldest first."""
        with self._lock:
            entries = [e["record"] for e in self._entries.values() if e["record"]["state"] in states]
            return [r["id"] for r in sorted(entries, key=lambda r: (r["created"], r["id"]))]
