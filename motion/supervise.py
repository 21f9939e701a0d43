"""``motion worker``'s restart loop: run the Celery worker as a child process and start it again
when it exits on its own.

Why: with Celery/kombu 5.x and the Redis transport, a worker that holds a task when Redis restarts
may log ``Unrecoverable error: AttributeError(...'hostname')`` and exit (docs/reliability.md).
No job is lost (leases and the sweep recover them), but the process is gone; under ``honcho`` the
whole Procfile would stop. So ``motion worker`` supervises its worker:

- the child is ``motion worker --no-supervise`` with the same options, in the supervisor's process
  group (a SIGKILL to the group kills both) and, on Linux, with a parent-death signal (SIGTERM) so
  that it does not outlive a supervisor killed alone;
- when the child exits and nobody asked it to, the supervisor logs a WARNING with its status and
  starts it again after a backoff: 1 s, doubling after each run shorter than ``STABLE_S``, at most
  ``MAX_BACKOFF_S``; a run of ``STABLE_S`` or longer resets it;
- SIGTERM, SIGINT and SIGQUIT to the supervisor are passed on to the child (SIGINT not when the
  terminal already sent it to the whole foreground group: Celery takes a second SIGINT as "cold
  shutdown"); the supervisor then waits for the child and exits with its status (128 + N when
  signal N ended it), without restarting it.
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time

log = logging.getLogger("motion.supervise")

FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
STABLE_S = 30.0
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _terminal_sent_it_to_the_group() -> bool:
    """True when we are the foreground process group of a terminal: a Ctrl-C reached the child too."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError, AttributeError):
        return False


def exit_status(returncode: int) -> int:
    """A shell's view of a child's return code: 128 + N for a child ended by signal N."""
    return 128 - returncode if returncode < 0 else returncode


class Supervisor:
    """Runs ``argv`` and keeps it running until a forwarded signal asks it to stop."""

    def __init__(self, argv: list[str], env: dict | None = None, name: str = "Celery worker",
                 first_backoff: float = FIRST_BACKOFF_S, max_backoff: float = MAX_BACKOFF_S,
                 stable: float = STABLE_S):
        self.argv, self.env, self.name = argv, env, name
        self.first_backoff, self.max_backoff, self.stable = first_backoff, max_backoff, stable
        self.child: subprocess.Popen | None = None
        self.stopping = False  # a plain flag: a signal handler must not take locks
        self.restarts = 0

    def _on_signal(self, signum, _frame) -> None:
        first = not self.stopping
        self.stopping = True
        child = self.child
        if child is None or child.poll() is not None:
            return
        if signum == signal.SIGINT and _terminal_sent_it_to_the_group():
            return
        if first or signum != signal.SIGINT:  # a repeated SIGINT is the user's to repeat
            try:
                child.send_signal(signum)
            except ProcessLookupError:
                pass

    def _start(self) -> subprocess.Popen:
        preexec = _die_with_parent if sys.platform.startswith("linux") else None
        self.child = subprocess.Popen(self.argv, env=self.env, preexec_fn=preexec)
        log.info("motion worker: %s started (pid %d)", self.name, self.child.pid,
                 extra={"child_pid": self.child.pid})
        return self.child

    def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless asked to stop meanwhile; True if asked."""
        until = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < until:
            time.sleep(min(0.1, max(0.0, until - time.monotonic())))
        return self.stopping

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in FORWARDED}
        backoff = self.first_backoff
        try:
            while True:
                started = time.monotonic()
                child = self._start()
                if self.stopping:  # a signal came while it was starting
                    child.send_signal(signal.SIGTERM)
                returncode = child.wait()
                if self.stopping:
                    log.info("motion worker: %s stopped with status %d", self.name, exit_status(returncode))
                    return exit_status(returncode)
                ran = time.monotonic() - started
                backoff = self.first_backoff if ran >= self.stable else backoff
                log.warning("motion worker: %s (pid %d) exited by itself with status %d after %.1f s; "
                            "starting it again in %.0f s", self.name, child.pid, exit_status(returncode),
                            ran, backoff, extra={"child_pid": child.pid, "status": exit_status(returncode)})
                if self._pause(backoff):
                    return exit_status(returncode)
                self.restarts += 1
                backoff = min(self.max_backoff, backoff * 2)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
