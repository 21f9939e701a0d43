"""Zero-copy mode of the simulated backend (a benchmark switch): a migration links the file into
the destination pool instead of copying it, with the same outcome and the same guarantees."""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from agent.host import HostAgent
from agent.main import build_parser
from agent.server import create_app
from agent.testing import HostClient, make_pool, migrate_body

KIB = 1024


def pool_file(root: Path, pool: dict, name: str) -> Path:
    return root / pool["path"].lstrip("/") / name


@pytest.fixture
def agent(tmp_path):
    host = HostAgent("h1", tmp_path, zero_copy=True, bandwidth_mib_s=0.001)
    yield host
    host.close()


@pytest.fixture
def client(agent):
    return HostClient.for_app(create_app({"h1": agent}), "h1")


def given_a_volume(client, src, vm="i-2-10-VM"):
    vid = str(uuid.uuid4())
    assert client.create_volume(vid, f"{vid}.vhdx", src, 256 * KIB + 3, vm=vm)[0] == 201
    return vid, f"{vid}.vhdx"


def test_a_zero_copy_migration_moves_the_same_bytes_at_once_ignoring_the_throttle(client, tmp_path):
    src, dst = make_pool("src"), make_pool("dst")
    vid, name = given_a_volume(client, src)
    original = pool_file(tmp_path, src, name).read_bytes()
    # At 0.001 MiB/s a real copy of 256 KiB would take minutes; the link takes no time.
    record = client.wait_for_state(client.submit(migrate_body(vid, name, src, dst))[1]["id"], timeout=10)
    assert record["state"] == "succeeded"
    assert (record["bytesDone"], record["bytesTotal"]) == (len(original), len(original))
    assert record["result"] == {"volumePath": name, "pool": dst["uuid"]}
    assert pool_file(tmp_path, dst, name).read_bytes() == original
    assert not pool_file(tmp_path, src, name).exists()
    assert not pool_file(tmp_path, dst, name + ".partial").exists()
    assert [loc["pool"] for loc in client.locate(vid)[1]["locations"]] == [dst["uuid"]]


def test_a_failed_zero_copy_migration_leaves_the_source_alone(client, tmp_path):
    src, dst = make_pool("src"), make_pool("dst")
    vid, name = given_a_volume(client, src)
    original = pool_file(tmp_path, src, name).read_bytes()
    pool_file(tmp_path, dst, name).parent.mkdir(parents=True, exist_ok=True)
    pool_file(tmp_path, dst, name).write_bytes(b"someone else's file")
    record = client.wait_for_state(client.submit(migrate_body(vid, name, src, dst))[1]["id"])
    assert record["state"] == "failed" and "already exists" in record["error"]
    assert pool_file(tmp_path, src, name).read_bytes() == original
    assert not pool_file(tmp_path, dst, name + ".partial").exists()


def test_a_restart_after_a_zero_copy_rename_keeps_only_the_source(tmp_path):
    src, dst = make_pool("src"), make_pool("dst")
    first = HostAgent("h1", tmp_path, zero_copy=True)
    client = HostClient.for_app(create_app({"h1": first}), "h1")
    vid, name = given_a_volume(client, src)
    original = pool_file(tmp_path, src, name).read_bytes()
    client.add_fault(type="hang", volumeId=vid)
    cid = client.submit(migrate_body(vid, name, src, dst))[1]["id"]
    client.wait_for_state(cid, "running")
    first.close()
    # What a crash between the rename and the source removal leaves: two names of one file.
    pool_file(tmp_path, dst, name).parent.mkdir(parents=True, exist_ok=True)
    pool_file(tmp_path, dst, name).hardlink_to(pool_file(tmp_path, src, name))
    second = HostAgent("h1", tmp_path, zero_copy=True)
    try:
        record = HostClient.for_app(create_app({"h1": second}), "h1").command(cid)[1]
        assert record["state"] == "failed"
        assert pool_file(tmp_path, src, name).read_bytes() == original
        assert not pool_file(tmp_path, dst, name).exists()
    finally:
        second.close()


def test_the_agent_command_line_has_a_zero_copy_switch_off_by_default():
    assert build_parser().parse_args(["--host", "h1"]).zero_copy is False
    assert build_parser().parse_args(["--host", "h1", "--zero-copy"]).zero_copy is True
