"""The transition tables: every allowed edge, and the ones that must not exist."""
import pytest

from orchestrator.states import (COMMAND_TRANSITIONS, JOB_PHASE_TRANSITIONS, VM_TRANSITIONS,
                                 VOLUME_TRANSITIONS, CommandState, JobPhase, VmState, VolumeState,
                                 can_transition)


@pytest.mark.parametrize("current,target,allowed", [
    (VolumeState.READY, VolumeState.MIGRATING, True),
    (VolumeState.MIGRATING, VolumeState.READY, True),
    (VolumeState.READY, VolumeState.READY, False),
    (VolumeState.MIGRATING, VolumeState.MIGRATING, False),
    ("Allocated", VolumeState.MIGRATING, False),
])
def test_volume_moves_only_between_ready_and_migrating(current, target, allowed):
    assert can_transition(VOLUME_TRANSITIONS, current, target) is allowed


@pytest.mark.parametrize("current,target,allowed", [
    (VmState.RUNNING, VmState.MIGRATING, True),
    (VmState.MIGRATING, VmState.RUNNING, True),
    (VmState.STOPPED, VmState.MIGRATING, False),
    (VmState.MIGRATING, VmState.STOPPED, False),
])
def test_vm_migrates_only_while_running(current, target, allowed):
    assert can_transition(VM_TRANSITIONS, current, target) is allowed


def test_a_finished_job_phase_has_no_way_out():
    assert JOB_PHASE_TRANSITIONS[JobPhase.DONE] == frozenset()
    assert can_transition(JOB_PHASE_TRANSITIONS, JobPhase.QUEUED, JobPhase.DISPATCHED)
    assert not can_transition(JOB_PHASE_TRANSITIONS, JobPhase.DISPATCHED, JobPhase.QUEUED)


def test_terminal_agent_command_states_are_final():
    for state in CommandState.TERMINAL:
        assert COMMAND_TRANSITIONS[state] == frozenset()
    assert can_transition(COMMAND_TRANSITIONS, CommandState.RUNNING, CommandState.ABORTED)
    assert not can_transition(COMMAND_TRANSITIONS, CommandState.SUCCEEDED, CommandState.FAILED)
