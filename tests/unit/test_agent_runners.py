"""The threads that run admitted commands: reused one after another, never a command waiting
for one, ended when idle or closed."""
from __future__ import annotations

import threading

import pytest

from agent.runners import Runners
from agent.testing import wait_until


def run_and_wait(runners: Runners) -> threading.Thread:
    ran, done = [], threading.Event()
    runners.run(lambda: (ran.append(threading.current_thread()), done.set()))
    assert done.wait(10)
    return ran[0]


def test_a_command_after_another_runs_in_the_same_thread():
    runners = Runners("h1")
    try:
        first = run_and_wait(runners)
        wait_until(lambda: runners._idle == 1, what="the thread to wait for the next job")
        assert run_and_wait(runners) is first
    finally:
        runners.close()


def test_commands_at_once_each_get_a_thread_and_none_waits_for_another():
    runners = Runners("h1")
    barrier = threading.Barrier(4, timeout=10)  # passes only if all four run at the same time
    passed = []
    try:
        for _ in range(4):
            runners.run(lambda: passed.append(barrier.wait()))
        wait_until(lambda: len(passed) == 4, what="four jobs running together")
    finally:
        runners.close()


def test_an_idle_thread_ends_after_its_idle_time_and_the_next_job_gets_a_new_one():
    runners = Runners("h1", idle_seconds=0.05)
    try:
        first = run_and_wait(runners)
        wait_until(lambda: not first.is_alive(), what="the idle thread to end")
        assert runners._idle == 0
        assert run_and_wait(runners) is not first
    finally:
        runners.close()


def test_closing_ends_the_idle_threads_and_refuses_new_jobs():
    runners = Runners("h1")
    thread = run_and_wait(runners)
    wait_until(lambda: runners._idle == 1, what="the thread to wait for the next job")
    runners.close()
    wait_until(lambda: not thread.is_alive(), what="the idle thread to end")
    with pytest.raises(RuntimeError):
        runners.run(lambda: None)


def test_a_failing_job_does_not_lose_the_thread():
    runners = Runners("h1")
    try:
        runners.run(lambda: 1 / 0)
        wait_until(lambda: runners._idle == 1, what="the thread to survive the error")
        run_and_wait(runners)
    finally:
        runners.close()
