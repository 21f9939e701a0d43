"""``motion worker``'s restart loop (motion.supervise): a child that exits by itself is started
again; a SIGTERM to the supervisor goes to the child, and the supervisor exits with its status."""
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import wait_until
from tests.helpers import children

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent("""
    import os, signal, sys, time
    pids = sys.argv[1]
    with open(pids, "a") as fh:
        fh.write(f"{os.getpid()}\\n")
    if len(open(pids).read().split()) == 1:
        sys.exit(3)  # the first incarnation dies by itself, as a worker does on a Redis restart
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))
    while True:
        time.sleep(0.05)
""")

SUPERVISOR = textwrap.dedent("""
    import logging, sys
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    from motion.supervise import Supervisor
    sys.exit(Supervisor([sys.executable, sys.argv[1], sys.argv[2]], first_backoff=0.1).run())
""")


def pids(path: Path) -> list[int]:
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def test_a_child_that_exits_by_itself_is_restarted_and_sigterm_is_forwarded(tmp_path):
    child, pid_file = tmp_path / "child.py", tmp_path / "pids"
    child.write_text(CHILD)
    sup = subprocess.Popen([sys.executable, "-c", SUPERVISOR, str(child), str(pid_file)], cwd=ROOT,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_until(lambda: len(pids(pid_file)) == 2, timeout=60, what="the child started again")
        first, second = pids(pid_file)
        assert first != second
        os.kill(sup.pid, signal.SIGTERM)
        assert sup.wait(timeout=60) == 7  # the child's own status, passed on
        _, err = sup.communicate(timeout=10)
        assert "exited by itself with status 3" in err and "starting it again" in err
        assert len(pids(pid_file)) == 2  # not restarted after the SIGTERM
    finally:
        if sup.poll() is None:
            os.killpg(sup.pid, signal.SIGKILL)


def test_a_child_killed_by_a_signal_after_a_stop_request_gives_128_plus_the_signal(tmp_path):
    child = tmp_path / "child.py"
    child.write_text("import time\nwhile True: time.sleep(0.05)\n")  # SIGTERM ends it (default action)
    sup = subprocess.Popen([sys.executable, "-c", SUPERVISOR, str(child), "unused"], cwd=ROOT,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_until(lambda: children(sup.pid), timeout=60, what="the child started")
        os.kill(sup.pid, signal.SIGTERM)
        assert sup.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if sup.poll() is None:
            os.killpg(sup.pid, signal.SIGKILL)

