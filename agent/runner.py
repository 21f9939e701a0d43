"""The per-host migration queue: a FIFO of command ids served by a fixed number of worker threads.

Hyper-V runs at most ``MaximumStorageMigrations`` storage migrations per host at once and queues
the rest in arrival order; this class is that queue. Exactly ``workers`` threads take ids in FIFO
order and call ``run(command_id)``, so no more than ``workers`` commands ever run at once. What
"running" means (state changes, skipping a command aborted while queued) is up to ``run``.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)


class MigrationRunner:
    """``workers`` daemon threads serving one FIFO queue of command ids."""

    def __init__(self, name: str, workers: int, run: Callable[[str], None]):
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._run = run
        self._queue: deque[str] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._loop, name=f"agent-{name}-migration-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, command_id: str) -> None:
        """Queue a command id behind every id queued before it."""
        with self._cond:
            if self._stopping:
                return
            self._queue.append(command_id)
            self._cond.notify()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking ids and wait for the threads (the caller interrupts running commands)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                command_id = self._queue.popleft()
            try:
                self._run(command_id)
            except Exception:  # a bug in one command must not kill the worker
                log.exception("command %s crashed its worker", command_id)
