"""A destination pool whose file system fills up mid-copy (ENOSPC), on a real small file system:
the command fails saying so, the partial copy is removed (the space given back), the source is
untouched, and the same volume moves once there is room.

The destination is a 1 MiB tmpfs mounted over the pool's directory, so this needs root (as CI
has); elsewhere it skips, or fails with MOTION_REQUIRE_SERVICES=1."""
from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from agent.host import HostAgent
from agent.server import create_app
from agent.testing import HostClient, make_pool, migrate_body
from tests.conftest import missing_service

KIB = 1024


@pytest.fixture
def small_dir(tmp_path):
    """Mount a 1 MiB tmpfs on a directory; yields a function that mounts it over a given path."""
    mounted = []

    def mount(path, size="1m"):
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            missing_service("mounting a small tmpfs (root)", RuntimeError(done.stderr.strip() or "not root"))
        mounted.append(path)
        return path
    if os.geteuid() != 0:
        missing_service("mounting a small tmpfs (root)", PermissionError("not running as root"))
    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_destination_that_fills_up_fails_the_copy_and_gives_the_space_back(tmp_path, small_dir):
    agent = HostAgent("h1", tmp_path)
    try:
        client = HostClient.for_app(create_app({"h1": agent}), "h1")
        src, dst, vid = make_pool("src"), make_pool("small"), str(uuid.uuid4())
        name = f"{vid}.vhdx"
        assert client.create_volume(vid, name, src, 4096 * KIB)[0] == 201
        source = tmp_path / src["path"].lstrip("/") / name
        original = source.read_bytes()
        target_dir = small_dir(tmp_path / dst["path"].lstrip("/"))

        _, record = client.submit(migrate_body(vid, name, src, dst))
        done = client.wait_for_state(record["id"])

        assert done["state"] == "failed"
        assert "No space left on device" in done["error"], done["error"]
        assert source.read_bytes() == original
        assert [p.name for p in target_dir.iterdir() if not p.name.startswith(".")] == []
        statvfs = os.statvfs(target_dir)
        assert statvfs.f_bfree == statvfs.f_blocks  # the partial copy's blocks are free again
        assert [loc["pool"] for loc in client.locate(vid)[1]["locations"]] == [src["uuid"]]

        # Once there is room, the same volume moves
        subprocess.run(["mount", "-o", "remount,size=8m", str(target_dir)], check=True)
        _, again = client.submit(migrate_body(vid, name, src, dst))
        assert client.wait_for_state(again["id"])["state"] == "succeeded"
        assert (target_dir / name).read_bytes() == original and not source.exists()
    finally:
        agent.close()
