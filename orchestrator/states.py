"""All states of volumes, VMs, async jobs and agent commands, and the allowed transitions.

Every transition in the system is a compare-and-set from one of these tables; the rules are
plain data so they can be tested without a database.
"""
from __future__ import annotations


class VolumeState:
    READY = "Ready"
    # Migrating: a non-terminal job owns the volume and its data is being copied to another
    # pool. The recorded pool still holds the complete data until the job finishes.
    MIGRATING = "Migrating"


class VmState:
    RUNNING = "Running"
    STOPPED = "Stopped"
    # Migrating: a non-terminal job is moving the VM (and maybe its volumes) to another host.
    MIGRATING = "Migrating"


class JobStatus:
    """CloudStack's ``jobstatus`` codes."""

    PENDING = 0
    SUCCEEDED = 1
    FAILED = 2


class JobPhase:
    """Our own phases inside CloudStack's "pending"."""

    # queued: committed, waiting for a worker (and an admission slot). Nothing sent to an agent.
    QUEUED = "queued"
    # dispatched: the agent command was sent; the deadline (wait x 2) runs from here.
    DISPATCHED = "dispatched"
    # finishing: the agent reported the outcome; the database is being brought in line.
    FINISHING = "finishing"
    DONE = "done"


class CommandState:
    """States of a command inside a host agent."""

    ACCEPTED = "accepted"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABORTED = "aborted"
    TERMINAL = frozenset({SUCCEEDED, FAILED, ABORTED})


VOLUME_TRANSITIONS: dict[str, frozenset[str]] = {
    VolumeState.READY: frozenset({VolumeState.MIGRATING}),
    VolumeState.MIGRATING: frozenset({VolumeState.READY}),
}

VM_TRANSITIONS: dict[str, frozenset[str]] = {
    VmState.RUNNING: frozenset({VmState.MIGRATING}),
    VmState.MIGRATING: frozenset({VmState.RUNNING}),
    VmState.STOPPED: frozenset(),
}

JOB_PHASE_TRANSITIONS: dict[str, frozenset[str]] = {
    JobPhase.QUEUED: frozenset({JobPhase.DISPATCHED, JobPhase.DONE}),
    JobPhase.DISPATCHED: frozenset({JobPhase.FINISHING, JobPhase.DONE}),
    JobPhase.FINISHING: frozenset({JobPhase.DONE}),
    JobPhase.DONE: frozenset(),
}

COMMAND_TRANSITIONS: dict[str, frozenset[str]] = {
    CommandState.ACCEPTED: frozenset({CommandState.RUNNING, CommandState.ABORTED, CommandState.FAILED}),
    CommandState.RUNNING: frozenset({CommandState.SUCCEEDED, CommandState.FAILED, CommandState.ABORTED}),
    CommandState.SUCCEEDED: frozenset(),
    CommandState.FAILED: frozenset(),
    CommandState.ABORTED: frozenset(),
}


def can_transition(table: dict[str, frozenset[str]], current: str, target: str) -> bool:
    """True when ``current -> target`` is an allowed edge of ``table``."""
    return target in table.get(current, frozenset())
