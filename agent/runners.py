"""Threads that run a host's admitted commands, kept and reused instead of one new thread each.

Every admitted command runs in a thread of its own (a copy may take hours and must not hold an
HTTP request). Starting a thread per command cost a visible share of the agent's CPU when
commands are instant (zero-copy benchmarks), so a thread that finished a command waits
``IDLE_SECONDS`` for the next one before it ends. As many commands run at once as were admitted:
a command never waits for a thread (a new one is started when none is idle).
"""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

IDLE_SECONDS = 30.0  # how long a thread with nothing to run waits for the next command


class Runners:
    """A growing set of reusable threads; ``run(job)`` starts ``job`` now, in one of them."""

    def __init__(self, name: str, idle_seconds: float = IDLE_SECONDS):
        self._name = name
        self._idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._idle = 0  # threads waiting on ``_jobs`` that no job was handed to yet
        self._closed = False
        self._count = 0

    def run(self, job: Callable[[], None]) -> None:
        """Run ``job`` in an idle thread, or in a new one if none is idle."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"runners of {self._name} are closed")
            if self._idle:
                self._idle -= 1  # handed over under the lock: a thread timing out cannot miss it
                self._jobs.put(job)
                return
            self._count += 1
            thread = threading.Thread(target=self._work, args=(job,), name=f"agent-{self._name}-{self._count}",
                                      daemon=True)
        thread.start()

    def close(self) -> None:
        """Let the idle threads end (busy ones end after their job)."""
        with self._lock:
            self._closed = True
            for _ in range(self._idle):
                self._jobs.put(None)
            self._idle = 0

    def _work(self, job: Callable[[], None] | None) -> None:
        while job is not None:
            try:
                job()
            except BaseException:  # a job handles its own errors; never lose the thread silently
                log.exception("agent runner %s: a job failed", self._name)
            with self._lock:
                if self._closed:
                    return
                self._idle += 1
            try:
                job = self._jobs.get(timeout=self._idle_seconds)
            except queue.Empty:
                with self._lock:
                    try:
                        job = self._jobs.get_nowait()  # handed over just as the wait ended
                    except queue.Empty:
                        self._idle -= 1
                        return
