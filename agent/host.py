"""One simulated hypervisor host: its command lifecycle, limits, registries and restart recovery.

``HostAgent`` is what the HTTP routes call. It validates requests, keeps the command store
idempotent by command id, queues commands behind the host's storage-migration limit, runs them on
the simulated backend, aborts them, and on start finishes commands that a previous agent process
left unfinished. State lives under ``<root>/.agent/<host>/``; volume files live in pool
directories under ``<root>``.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path

from agent import commands as cs
from agent.backends.faults import FaultBook
from agent.backends.simulated import (
    DEFAULT_CHUNK_SIZE,
    MigrationFailed,
    MigrationInterrupted,
    SimulatedHyperV,
    VolumeSizeMismatch,
)
from agent.commands import CommandStore
from agent.errors import AgentError, Conflict, InvalidRequest, NotFound, Unavailable
from agent.registry import Registry
from agent.runner import MigrationRunner
from agent.validation import check_host_name, parse_command, parse_fault, parse_volume_create

log = logging.getLogger(__name__)

RESTARTED_ERROR = "agent restarted during the command"
ABORT_WAIT_SECONDS = 30.0


class _Control:
    """How a running command is told to stop: an abort (state ``aborted``) or an agent stop."""

    def __init__(self) -> None:
        self.wake = threading.Event()
        self.done = threading.Event()
        self.abort_requested = False
        self.stopping = False

    def interrupted(self) -> bool:
        return self.abort_requested or self.stopping

    def wait(self, seconds: float) -> None:
        self.wake.wait(seconds)


class HostAgent:
    """The agent side of one hypervisor host (see the module docstring)."""

    def __init__(self, name: str, root: str | Path, max_storage_migrations: int = 2,
                 bandwidth_mib_s: float | None = None, *, chunk_size: int = DEFAULT_CHUNK_SIZE):
        try:
            self.name = check_host_name(name)
        except InvalidRequest as exc:
            raise ValueError(exc.message) from None
        if max_storage_migrations < 1:
            raise ValueError("max_storage_migrations must be at least 1")
        self.root = Path(root)
        self.max_storage_migrations = max_storage_migrations
        state_dir = self.root / ".agent" / name
        self.backend = SimulatedHyperV(self.root, chunk_size=chunk_size, bandwidth_mib_s=bandwidth_mib_s)
        self.registry = Registry(state_dir)
        self.commands = CommandStore(state_dir / "commands")
        self.faults = FaultBook()
        self._lock = threading.Lock()
        self._controls: dict[str, _Control] = {}
        self._active_volumes: dict[str, str] = {}  # volume id -> running command id
        self._running = 0
        self._peak = 0
        self._closed = False
        self._recover()
        self._runner = MigrationRunner(name, max_storage_migrations, self._run)

    # -- queries -------------------------------------------------------------------------------

    def status(self) -> dict:
        """The host's limit, what runs and waits now, and the peak concurrency seen since start."""
        with self._lock:
            running, peak = self._running, self._peak
        return {
            "host": self.name,
            "maxStorageMigrations": self.max_storage_migrations,
            "running": running,
            "queued": len(self.commands.ids_in({cs.ACCEPTED})),
            "peakStorageMigrations": peak,
        }

    def command(self, command_id: str) -> dict:
        record = self.commands.get(command_id)
        if record is None:
            raise NotFound(f"unknown command {command_id!r} on host {self.name!r}")
        return record

    def locate_volume(self, volume_id: str) -> dict:
        """Where the volume's data really is: every known pool holding its complete file."""
        entry = self.registry.volume(volume_id)
        if entry is None:
            raise NotFound(f"unknown volume {volume_id!r} on host {self.name!r}")
        locations = []
        for pool in self.registry.pools():
            size = self.backend.complete_size(pool["path"], entry["path"])
            if size is not None:
                locations.append({"pool": pool["uuid"], "poolPath": pool["path"], "size": size})
        return {"id": volume_id, "path": entry["path"], "vm": entry.get("vm"), "locations": locations}

    # -- volumes and faults --------------------------------------------------------------------

    def create_volume(self, body) -> tuple[dict, bool]:
        """Create a volume file of exactly ``size`` random bytes unless it exists already."""
        req = parse_volume_create(body)
        pool = req["pool"]
        self.registry.remember_pool(pool)
        try:
            created = self.backend.create_volume(pool["path"], req["path"], req["size"])
        except VolumeSizeMismatch as exc:
            raise Conflict(str(exc)) from None
        except OSError as exc:
            raise AgentError(f"creating volume file {req['path']} in pool {pool['uuid']} failed: {exc}") from None
        self.registry.remember_volume(req["id"], path=req["path"], pool=pool["uuid"], size=req["size"], vm=req["vm"])
        answer = {"id": req["id"], "path": req["path"], "pool": pool["uuid"], "size": req["size"], "created": created}
        return answer, created

    def add_fault(self, body) -> dict:
        return self.faults.add(parse_fault(body))

    def clear_faults(self) -> int:
        return self.faults.clear()

    def list_faults(self) -> list[dict]:
        return self.faults.list()

    # -- commands ------------------------------------------------------------------------------

    def submit_command(self, body) -> tuple[dict, bool]:
        """Accept a command (``True``) or return the existing one with that id (``False``)."""
        request = parse_command(body)
        with self._lock:
            if self._closed:
                raise Unavailable(f"host agent {self.name!r} is shutting down")
        existing = self.commands.get(request["id"])
        if existing is not None:
            return existing, False
        for field in ("srcPool", "pool"):
            self.registry.remember_pool(request[field])
        known = self.registry.volume(request["volumeId"]) or {}
        self.registry.remember_volume(
            request["volumeId"], path=request["volumePath"], vm=request["attachedVmName"],
            pool=known.get("pool") or request["srcPool"]["uuid"],
        )
        record, created = self.commands.create(request)
        if created:
            self._runner.submit(record["id"])
        return record, created

    def abort_command(self, command_id: str, wait_seconds: float = ABORT_WAIT_SECONDS) -> dict:
        """Stop a non-terminal command and return its record (unchanged if already terminal)."""
        with self._lock:
            record = self.command(command_id)
            if record["state"] == cs.ACCEPTED:
                # Still queued: nothing was copied yet; the worker will skip it.
                return self.commands.transition(command_id, {cs.ACCEPTED}, state=cs.ABORTED)
            control = self._controls.get(command_id)
            if record["state"] in cs.TERMINAL or control is None:
                return record
            control.abort_requested = True
            control.wake.set()
        # The copy loop notices between chunks and removes its partial copy; wait for that.
        control.done.wait(wait_seconds)
        return self.command(command_id)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker threads. Interrupted commands stay non-terminal on disk (partial copies
        removed) and are finished as failed by the next ``HostAgent`` on this root."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for control in self._controls.values():
                control.stopping = True
                control.wake.set()
        self._runner.stop(timeout)

    # -- execution (worker threads) ------------------------------------------------------------

    def _run(self, command_id: str) -> None:
        with self._lock:
            if self._closed:
                return
            volume_id = self.commands.request(command_id)["volumeId"]
            busy_with = self._active_volumes.get(volume_id)
            if busy_with is not None:
                # Like Hyper-V, one storage migration per disk at a time: two copies would
                # share one partial file.
                self.commands.transition(command_id, {cs.ACCEPTED}, state=cs.FAILED,
                                         error=f"volume {volume_id} is already being migrated by command {busy_with}")
                return
            if self.commands.transition(command_id, {cs.ACCEPTED}, state=cs.RUNNING) is None:
                return  # aborted while it waited in the queue
            control = self._controls[command_id] = _Control()
            self._active_volumes[volume_id] = command_id
            self._running += 1
            self._peak = max(self._peak, self._running)
        try:
            self._execute(command_id, control)
        except Exception as exc:  # never leave a command running because of a bug
            log.exception("command %s failed unexpectedly", command_id)
            request = self.commands.request(command_id)
            self.backend.discard_partial(request["pool"]["path"], request["volumePath"])
            self._finish(command_id, cs.FAILED, error=f"internal agent error: {exc!r}")
        finally:
            with self._lock:
                self._running -= 1
                del self._controls[command_id]
                del self._active_volumes[volume_id]
            control.done.set()

    def _execute(self, command_id: str, control: _Control) -> None:
        request = self.commands.request(command_id)
        src, dst, name = request["srcPool"], request["pool"], request["volumePath"]
        fault = self.faults.take(request["type"], request["volumeId"])
        if fault and fault["type"] == "fail":
            self._finish(command_id, cs.FAILED, error=fault["message"])
            return
        try:
            if fault and fault["type"] == "hang":
                while not control.interrupted():
                    control.wait(1.0)
                raise MigrationInterrupted()
            self.backend.migrate_volume(
                src["path"], dst["path"], name,
                progress=lambda done, total: self.commands.progress(command_id, done, total),
                control=control,
            )
        except MigrationInterrupted:
            if control.abort_requested:
                self._finish(command_id, cs.ABORTED)
            return  # agent stopping: left running on disk for the next start to finish
        except MigrationFailed as exc:
            self._finish(command_id, cs.FAILED, error=str(exc))
            return
        self.registry.remember_volume(request["volumeId"], path=name, pool=dst["uuid"])
        self._finish(command_id, cs.SUCCEEDED, result={"volumePath": name, "pool": dst["uuid"]})

    def _finish(self, command_id: str, state: str, **changes) -> None:
        self.commands.transition(command_id, {cs.RUNNING}, state=state, **changes)

    def _recover(self) -> None:
        """Finish commands a previous agent process left ``accepted`` or ``running``."""
        for command_id in self.commands.ids_in({cs.ACCEPTED, cs.RUNNING}):
            record = self.commands.get(command_id)
            request = self.commands.request(command_id)
            src, dst, name = request["srcPool"], request["pool"], request["volumePath"]
            if record["state"] == cs.ACCEPTED:
                self.backend.discard_partial(dst["path"], name)
                completed = False
            else:
                completed = self.backend.recover_interrupted(src["path"], dst["path"], name)
            if completed:
                # Crash after the source was removed: the data is only on the destination now.
                size = self.backend.complete_size(dst["path"], name) or record["bytesTotal"]
                self.registry.remember_volume(request["volumeId"], path=name, pool=dst["uuid"])
                self.commands.transition(
                    command_id, {cs.RUNNING}, state=cs.SUCCEEDED, bytesDone=size, bytesTotal=size,
                    result={"volumePath": name, "pool": dst["uuid"]},
                )
            else:
                self.commands.transition(command_id, {cs.ACCEPTED, cs.RUNNING}, state=cs.FAILED,
                                         error=RESTARTED_ERROR)
