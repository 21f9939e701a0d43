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


def test_a_post_that_asks_to_wait_is_answered_with_the_outcome_of_an_instant_migration(client, tmp_path):
    src, dst = make_pool("src"), make_pool("dst")
    vid, name = given_a_volume(client, src)
    status, record = client.request("POST", "/commands?wait=5", json=migrate_body(vid, name, src, dst))
    assert status == 202 and record["state"] == "succeeded"
    assert record["result"] == {"volumePath": name, "pool": dst["uuid"]}
    # re-posting the id answers 200 with the same outcome, at once
    assert client.request("POST", "/commands?wait=5", json=migrate_body(vid, name, src, dst, command_id=record["id"]))[1]["state"] == "succeeded"


def test_a_wait_that_is_not_a_number_of_seconds_is_refused(client):
    for bad in ("-1", "soon", "inf", "nan"):
        status, answer = client.request("GET", f"/commands/nope?wait={bad}")
        assert status == 400 and "'wait'" in answer["error"]


def test_a_get_that_asks_to_wait_answers_when_the_copy_ends_or_when_the_wait_is_over(tmp_path):
    import time

    host = HostAgent("h1", tmp_path, bandwidth_mib_s=1, chunk_size=64 * KIB)  # a real, throttled copy
    try:
        client = HostClient.for_app(create_app({"h1": host}), "h1")
        src, dst = make_pool("src"), make_pool("dst")
        vid, name = given_a_volume(client, src)
        status, record = client.request("POST", "/commands", json=migrate_body(vid, name, src, dst))
        assert status == 202 and record["state"] == "accepted"  # no wait asked: at once
        started = time.monotonic()
        _, early = client.request("GET", f"/commands/{record['id']}?wait=0.05")
        assert early["state"] in ("accepted", "running") and time.monotonic() - started >= 0.04
        _, done = client.request("GET", f"/commands/{record['id']}?wait=10")
        assert done["state"] == "succeeded" and time.monotonic() - started < 5
    finally:
        host.close()
