"""One simulated hypervisor host: its command lifecycle, limits, registries, guests and recovery.

``HostAgent`` is what the HTTP routes call. It validates requests, keeps the command store
idempotent by command id, queues commands behind the storage-migration limit (``slots``), runs
them on the simulated backend (``jobs`` for ``MigrateVolumeCommand``, ``vm_migration`` for
``MigrateWithStorageCommand``), aborts them, and on start finishes commands that a previous agent
process left unfinished. It also keeps the VMs running here, whose simulated guests write to
their volumes when enabled (``vms.VmsMixin``); ``storage.StorageMixin`` adds volume files, pools
and where data really is. State lives under ``<root>/.agent/<host>/``; volume files live in pool directories
under ``<root>``.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from agent import commands as cs
from agent import jobs, vm_migration
from agent.backends.faults import CRASH_EXIT_CODE, FaultBook, parse_fault
from agent.backends.guest import DEFAULT_BLOCK_SIZE, Guest, WriteLog
from agent.backends.simulated import DEFAULT_CHUNK_SIZE, SimulatedHyperV
from agent.command_bodies import MIGRATE_VOLUME, MIGRATE_WITH_STORAGE, command_volume_ids, parse_command
from agent.commands import CommandStore
from agent.errors import InvalidRequest, NotFound, Unavailable
from agent.jobs import RESTARTED_ERROR, Control  # noqa: F401  (RESTARTED_ERROR: part of this module's API)
from agent.registry import Registry
from agent.runners import Runners
from agent.slots import SlotTable, Ticket
from agent.storage import StorageMixin
from agent.validation import check_host_name, parse_guest, same_pool
from agent.vms import VmRegistry, VmsMixin

log = logging.getLogger(__name__)

ABORT_WAIT_SECONDS = 30.0
RUNNERS = {MIGRATE_VOLUME: jobs.run_migrate_volume, MIGRATE_WITH_STORAGE: vm_migration.run_migrate_with_storage}
RECOVERERS = {MIGRATE_VOLUME: jobs.recover_migrate_volume,
              MIGRATE_WITH_STORAGE: vm_migration.recover_migrate_with_storage}
DISCARDERS = {MIGRATE_VOLUME: jobs.discard_partials, MIGRATE_WITH_STORAGE: vm_migration.discard_partials}


class HostAgent(StorageMixin, VmsMixin):
    """The agent side of one hypervisor host (see the module docstring).

    ``slots`` is shared by the hosts of one process (``AgentServer``), so that a
    ``MigrateWithStorageCommand`` between two of them takes a slot on both; alone, a host has its own.
    ``zero_copy`` makes migrations link files instead of copying them (benchmarks; ``backends.zerocopy``).
    """

    def __init__(self, name: str, root: str | Path, max_storage_migrations: int = 2,
                 bandwidth_mib_s: float | None = None, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 guest_writes_per_s: float = 0.0, guest_block_size: int = DEFAULT_BLOCK_SIZE,
                 slots: SlotTable | None = None, zero_copy: bool = False,
                 command_retention: float = cs.RETENTION):
        try:
            self.name = check_host_name(name)
        except InvalidRequest as exc:
            raise ValueError(exc.message) from None
        if max_storage_migrations < 1:
            raise ValueError("max_storage_migrations must be at least 1")
        self.root = Path(root)
        self.max_storage_migrations = max_storage_migrations
        state_dir = self.root / ".agent" / name
        self.backend = SimulatedHyperV(self.root, chunk_size=chunk_size, bandwidth_mib_s=bandwidth_mib_s,
                                       zero_copy=zero_copy)
        self.registry = Registry(state_dir)
        self.vms = VmRegistry(state_dir, name)
        self.commands = CommandStore(state_dir / "commands", name, command_retention)
        self.faults = FaultBook()
        self.write_log = WriteLog(state_dir / "writes.jsonl")
        self.guest = Guest(name, self.write_log, block_size=guest_block_size, is_offline=self.backend.is_offline)
        self.slots = slots if slots is not None else SlotTable()
        self.slots.add_host(name, max_storage_migrations)
        self._lock = threading.Lock()
        self._controls: dict[str, Control] = {}
        self._active_volumes: dict[str, str] = {}  # volume id -> running command id
        self._tickets: dict[str, Ticket] = {}
        self._runners = Runners(name)
        self._runs: set[threading.Event] = set()  # set when its command's run has ended
        self._closed = False
        self._recover()
        for vm in self.vms.all():
            self._attach(vm)
        self.guest.set_rate(guest_writes_per_s)

    # -- queries -------------------------------------------------------------------------------

    def status(self) -> dict:
        """The host's limit, what runs and waits now, the peak concurrency seen, the guests' rate."""
        return {
            "host": self.name,
            "maxStorageMigrations": self.max_storage_migrations,
            "running": self.slots.running(self.name),
            "queued": len(self.commands.ids_in({cs.ACCEPTED})),
            "peakStorageMigrations": self.slots.peak(self.name),
            "guestWritesPerSecond": self.guest.writes_per_second,
        }

    def command(self, command_id: str, wait: float = 0.0) -> dict:
        """The command's record; with ``wait`` > 0, once it is terminal or after ``wait`` seconds.

        It is on disk before it is returned (an answer about a command makes it durable)."""
        if wait <= 0:
            record = self.commands.get(command_id, durable=True)
        else:
            record = self.commands.wait_terminal(command_id, wait, durable=True)
        if record is None:
            raise NotFound(f"unknown command {command_id!r} on host {self.name!r}")
        return record

    # -- faults and guests -------------------------------------------------------------------

    def add_fault(self, body) -> dict:
        return self.faults.add(parse_fault(body))

    def clear_faults(self) -> int:
        return self.faults.clear()

    def list_faults(self) -> list[dict]:
        return self.faults.list()

    def set_guest(self, body) -> dict:
        """Change how often the simulated guests write (``{"writesPerSecond": n}``, 0 = off)."""
        self.guest.set_rate(parse_guest(body))
        return self.status()

    # -- commands ------------------------------------------------------------------------------

    def submit_command(self, body, wait: float = 0.0) -> tuple[dict, bool]:
        """Accept a command (``True``) or return the existing one with that id (``False``).

        With ``wait`` > 0 the record is returned once the command is terminal or after ``wait``
        seconds. The record returned is on disk (see ``commands``: a command that ends within
        the wait is written as ``running`` and as its end, never as ``accepted``)."""
        request = parse_command(body)
        with self._lock:
            if self._closed:
                raise Unavailable(f"host agent {self.name!r} is shutting down")
        if self.commands.get(request["id"]) is not None:
            return self.command(request["id"], wait), False
        extra = {}
        if request["type"] == MIGRATE_VOLUME:
            for field in ("srcPool", "pool"):
                self.registry.remember_pool(request[field])
            known = self.registry.volume(request["volumeId"]) or {}
            self.registry.remember_volume(
                request["volumeId"], path=request["volumePath"], vm=request["attachedVmName"],
                pool=known.get("pool") or request["srcPool"]["uuid"],
            )
        else:
            if request["tgtHost"] == self.name:
                raise InvalidRequest(f"field 'tgtHost' names this host ({self.name}); "
                                     "a VM migrates with its storage to another host")
            for entry in request["volumeToPool"]:
                volume = entry["volume"]
                self.registry.remember_pool(volume["pool"])
                self.registry.remember_pool(entry["pool"])
                known = self.registry.volume(volume["id"]) or {}
                self.registry.remember_volume(volume["id"], path=volume["path"], vm=request["vm"]["name"],
                                              pool=known.get("pool") or volume["pool"]["uuid"])
            extra["volumes"] = [
                {"id": e["volume"]["id"], "bytesDone": 0, "bytesTotal": 0,
                 "state": "stays" if same_pool(e["volume"]["pool"], e["pool"]) else "pending"}
                for e in request["volumeToPool"]]
        record, created = self.commands.create(request, **extra)
        if created:
            hosts = (self.name,)
            if request["type"] == MIGRATE_WITH_STORAGE and self.slots.serves(request["tgtHost"]):
                hosts += (request["tgtHost"],)  # the destination is in this process: it counts there too
            ticket = self.slots.enqueue(self.name, hosts, lambda t: self._start(record["id"], t))
            with self._lock:
                if not ticket.admitted:
                    self._tickets[record["id"]] = ticket
        if wait <= 0 and created:
            self.commands.get(record["id"], durable=True)  # on disk (as accepted, or as it is now)
            return record, created  # the new record, as the protocol says: accepted
        return self.command(record["id"], wait), created

    def abort_command(self, command_id: str, wait_seconds: float = ABORT_WAIT_SECONDS) -> dict:
        """Stop a non-terminal command and return its record (unchanged if already terminal)."""
        with self._lock:
            record = self.command(command_id)
            if record["state"] == cs.ACCEPTED:
                # Still queued: nothing was copied yet. (Commands start running only under this
                # lock, so the transition cannot lose a race with the start.)
                ticket = self._tickets.pop(command_id, None)
                aborted = self.commands.transition(command_id, {cs.ACCEPTED}, state=cs.ABORTED)
        if record["state"] == cs.ACCEPTED:
            if ticket is not None:
                # It gives up its place in the queue; outside our lock, since that may start
                # commands that were waiting behind it.
                self.slots.cancel(ticket)
            return aborted
        with self._lock:
            record = self.command(command_id)
            control = self._controls.get(command_id)
            if record["state"] in cs.TERMINAL or control is None:
                return record
            control.abort_requested = True
            control.wake.set()
        # The copy loop notices between chunks and removes its partial copies; wait for that.
        control.done.wait(wait_seconds)
        return self.command(command_id)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker threads and guests. Interrupted commands stay non-terminal on disk
        (partial copies removed) and are finished as failed by the next ``HostAgent`` on this root."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for control in self._controls.values():
                control.stopping = True
                control.wake.set()
            runs = list(self._runs)
        self.slots.cancel_owned_by(self.name)
        for done in runs:
            done.wait(timeout)
        self._runners.close()
        self.guest.stop()
        self.write_log.close()

    # -- execution (a thread per admitted command, reused: ``runners``) --------------------------

    def _start(self, command_id: str, ticket: Ticket) -> None:
        done = threading.Event()
        with self._lock:  # handed over under the lock, so close() never misses a run about to start
            if not self._closed:
                self._runs.add(done)
                self._runners.run(lambda: self._run(command_id, ticket, done))
                return
        self.slots.release(ticket)  # closed: it never runs (it stays on disk for the next start)

    def _run(self, command_id: str, ticket: Ticket, done: threading.Event) -> None:
        threading.current_thread().name = f"agent-{self.name}-{command_id}"
        try:
            self._run_admitted(command_id)
        finally:
            self.slots.release(ticket)
            with self._lock:
                self._runs.discard(done)
            done.set()

    def _run_admitted(self, command_id: str) -> None:
        with self._lock:
            self._tickets.pop(command_id, None)
            if self._closed:
                return
            request = self.commands.request(command_id)
            volume_ids = command_volume_ids(request)
            busy = [(v, self._active_volumes[v]) for v in volume_ids if v in self._active_volumes]
            if busy:
                # Like Hyper-V, one storage migration per disk at a time: two copies would
                # share one partial file.
                self.commands.transition(command_id, {cs.ACCEPTED}, state=cs.FAILED,
                                         error=f"volume {busy[0][0]} is already being migrated by command {busy[0][1]}")
                return
            if self.commands.transition(command_id, {cs.ACCEPTED}, state=cs.RUNNING) is None:
                return  # aborted while it waited in the queue
            control = self._controls[command_id] = Control()
            for volume_id in volume_ids:
                self._active_volumes[volume_id] = command_id
        try:
            RUNNERS[request["type"]](self, command_id, control)
        except Exception as exc:  # never leave a command running because of a bug
            log.exception("command %s failed unexpectedly", command_id)
            DISCARDERS[request["type"]](self, request)
            self.finish(command_id, cs.FAILED, error=f"internal agent error: {exc!r}")
        finally:
            with self._lock:
                del self._controls[command_id]
                for volume_id in volume_ids:
                    del self._active_volumes[volume_id]
            control.done.set()

    def finish(self, command_id: str, state: str, **changes) -> None:
        """Move a running command to its terminal ``state`` (no-op if it is not running)."""
        self.commands.transition(command_id, {cs.RUNNING}, state=state, **changes)

    def crash(self, command_id: str) -> None:
        """A ``crash`` fault: end the process now, after the copy, before recording the outcome."""
        log.critical("host %s command %s: crash fault, exiting with %d", self.name, command_id, CRASH_EXIT_CODE)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(CRASH_EXIT_CODE)

    def _recover(self) -> None:
        """Finish commands a previous agent process left ``accepted`` or ``running``."""
        for command_id in self.commands.ids_in({cs.ACCEPTED, cs.RUNNING}):
            record = self.commands.get(command_id)
            RECOVERERS[record["type"]](self, command_id, record)
