"""Running and recovering ``MigrateVolumeCommand``: one volume to another pool, the VM stays put.

The steps (see ``backends.copying`` for the mirror): take a matching fault, open the copy, bulk
copy, re-copy what the guest wrote meanwhile, then - with the guest's I/O paused - copy the last
dirty chunks, rename the copy into place and remove the source. Every failure before that point
removes the destination copy and leaves the source complete and in use. ``Control`` is how a
running command is told to stop (an abort, or the agent stopping). ``apply_fault`` runs the
faults that act before a copy (``hang``, ``delay``, ``slow``) for both command types.
"""
from __future__ import annotations

import threading
import time

from agent import commands as cs
from agent.backends.simulated import MigrationFailed, MigrationInterrupted

RESTARTED_ERROR = "agent restarted during the command"


class Control:
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


def apply_fault(fault: dict | None, control: Control) -> float | None:
    """Act out a ``hang`` or ``delay`` fault; return the bandwidth of a ``slow`` one (else ``None``)."""
    if fault is None:
        return None
    if fault["type"] == "hang":
        while not control.interrupted():
            control.wait(1.0)
        raise MigrationInterrupted()
    if fault["type"] == "delay":
        deadline = time.monotonic() + fault["seconds"]
        while (left := deadline - time.monotonic()) > 0:
            if control.interrupted():
                raise MigrationInterrupted()
            control.wait(min(left, 0.2))
        if control.interrupted():
            raise MigrationInterrupted()
    if fault["type"] == "slow":
        return fault["bandwidth"]
    return None


def run_migrate_volume(host, command_id: str, control: Control) -> None:
    """Execute a running ``MigrateVolumeCommand`` on ``host`` (a ``HostAgent``) to its end."""
    request = host.commands.request(command_id)
    src, dst, name, volume_id = request["srcPool"], request["pool"], request["volumePath"], request["volumeId"]
    fault = host.faults.take(request["type"], [volume_id])
    if fault and fault["type"] == "fail":
        host.finish(command_id, cs.FAILED, error=fault["message"])
        return
    try:
        bandwidth = apply_fault(fault, control)
        mirror = host.backend.mirror(host.guest.disk(volume_id), src, dst, name, control, bandwidth_mib_s=bandwidth)

        def progress() -> None:
            host.commands.progress(command_id, mirror.done, mirror.total, recopied=mirror.recopied)

        try:
            mirror.open()
            progress()
            mirror.bulk(progress)
            mirror.converge(progress)
            with mirror.disk.lock:  # the switch-over: guest I/O waits until the VM uses the copy
                mirror.switch_over()
                mirror.remove_source(dst)
        except BaseException:
            mirror.discard()
            raise
    except MigrationInterrupted:
        if control.abort_requested:
            host.finish(command_id, cs.ABORTED)
        return  # agent stopping: left running on disk for the next start to finish
    except MigrationFailed as exc:
        host.finish(command_id, cs.FAILED, error=str(exc))
        return
    if fault and fault["type"] == "crash":
        host.crash(command_id)
    _moved(host, volume_id, name, dst)
    host.finish(command_id, cs.SUCCEEDED, bytesDone=mirror.total, bytesTotal=mirror.total,
                recopiedBytes=mirror.recopied, result={"volumePath": name, "pool": dst["uuid"]})


def _moved(host, volume_id: str, name: str, dst: dict) -> None:
    host.registry.remember_volume(volume_id, path=name, pool=dst["uuid"])
    host.vms.move_volume(volume_id, dst)


def discard_partials(host, request: dict) -> None:
    """Remove the partial copy of a ``MigrateVolumeCommand`` (after an unexpected error)."""
    host.backend.discard_partial(request["pool"]["path"], request["volumePath"])


def recover_migrate_volume(host, command_id: str, record: dict) -> None:
    """Finish a ``MigrateVolumeCommand`` that a previous agent process left unfinished."""
    request = host.commands.request(command_id)
    src, dst, name = request["srcPool"], request["pool"], request["volumePath"]
    if record["state"] == cs.ACCEPTED:
        host.backend.discard_partial(dst["path"], name)
        completed = False
    else:
        completed = host.backend.recover_interrupted(src["path"], dst["path"], name)
    if completed:
        # Crash after the source was removed: the data is only on the destination now.
        size = host.backend.complete_size(dst["path"], name) or record["bytesTotal"]
        _moved(host, request["volumeId"], name, dst)
        host.commands.transition(command_id, {cs.RUNNING}, state=cs.SUCCEEDED, bytesDone=size, bytesTotal=size,
                                 result={"volumePath": name, "pool": dst["uuid"]})
    else:
        host.commands.transition(command_id, {cs.ACCEPTED, cs.RUNNING}, state=cs.FAILED, error=RESTARTED_ERROR)
