"""The host agent as a real process: killed with SIGKILL mid-copy, or crashing on a fault, and restarted.

No services needed: each test starts ``python -m agent`` on a temporary data root, drives it
over HTTP, ends it the hard way and starts it again on the same root.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from agent.testing import HostClient, make_pool, migrate_body, wait_until

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


class AgentProcess:
    """``python -m agent --host hv-1`` on ``root`` with extra arguments; ``client`` speaks to it."""

    def __init__(self, root: Path, *args: str):
        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "--host", "hv-1", "--root", str(root), "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=PROJECT_ROOT)
        line = self.proc.stdout.readline()
        assert " on http://" in line, f"agent did not start: {line!r}"
        self.client = HostClient.for_url(line.split(" on ", 1)[1].split()[0] + "/hosts/hv-1")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()


@pytest.fixture
def processes():
    started: list[AgentProcess] = []

    def start(root: Path, *args: str) -> AgentProcess:
        started.append(AgentProcess(root, *args))
        return started[-1]

    yield start
    for agent in started:
        agent.stop()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def partial_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.partial"))


def given_a_volume(client: HostClient, root: Path, size=4 * MIB):
    src, dst, vid = make_pool("src"), make_pool("dst"), str(uuid.uuid4())
    assert client.create_volume(vid, f"{vid}.vhdx", src, size)[0] == 201
    digest = sha(root / src["path"].lstrip("/") / f"{vid}.vhdx")
    return vid, f"{vid}.vhdx", src, dst, digest


def assert_in_exactly_one_place(client: HostClient, root: Path, vid: str, name: str, digest: str, pool: dict):
    status, answer = client.request("GET", f"/volumes/{vid}?checksum=1")
    assert status == 200
    assert [(loc["pool"], loc["sha256"]) for loc in answer["locations"]] == [(pool["uuid"], digest)]
    assert sha(root / pool["path"].lstrip("/") / name) == digest
    assert partial_files(root) == []


def test_an_agent_killed_mid_copy_and_restarted_reports_one_outcome_and_one_complete_copy(tmp_path, processes):
    # Throttled to 2 MiB/s: the 4 MiB copy is still running when the agent is killed.
    first = processes(tmp_path, "--bandwidth", "2")
    vid, name, src, dst, digest = given_a_volume(first.client, tmp_path)
    body = migrate_body(vid, name, src, dst)
    assert first.client.submit(body)[0] == 202
    wait_until(lambda: first.client.command(body["id"])[1]["bytesDone"] > 0, what="copy progress")

    first.stop()  # SIGKILL: no clean-up of any kind
    second = processes(tmp_path)
    status, record = second.client.command(body["id"])

    assert status == 200 and record["state"] in ("failed", "succeeded")
    if record["state"] == "failed":
        assert record["error"] == "agent restarted during the command"
    assert_in_exactly_one_place(second.client, tmp_path, vid, name, digest,
                                dst if record["state"] == "succeeded" else src)
    # Re-posting the id returns the outcome; nothing is copied again.
    assert second.client.submit(body) == (200, record)
    assert second.client.status()[1]["peakStorageMigrations"] == 0


def test_a_crash_after_the_copy_is_recovered_as_a_success_on_restart(tmp_path, processes):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps([{"type": "crash", "command": "MigrateVolumeCommand"}]))
    first = processes(tmp_path, "--fault-plan", str(plan))
    vid, name, src, dst, digest = given_a_volume(first.client, tmp_path, size=MIB)
    body = migrate_body(vid, name, src, dst)
    first.client.submit(body)

    assert first.proc.wait(timeout=60) == 70  # the crash fault's exit code
    second = processes(tmp_path)
    record = second.client.command(body["id"])[1]

    assert record["state"] == "succeeded"
    assert record["result"] == {"volumePath": name, "pool": dst["uuid"]}
    assert_in_exactly_one_place(second.client, tmp_path, vid, name, digest, dst)
