"""Injected faults (the simulated backend's test hook) and aborting commands."""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from agent.host import HostAgent
from agent.server import create_app
from agent.testing import HostClient, make_pool, migrate_body, wait_until

KIB = 1024


@pytest.fixture
def agent(tmp_path):
    host = HostAgent("h1", tmp_path, chunk_size=64 * KIB)
    yield host
    host.close()


@pytest.fixture
def client(agent):
    return HostClient.for_app(create_app({"h1": agent}), "h1")


def pool_file(root: Path, pool: dict, name: str) -> Path:
    return root / pool["path"].lstrip("/") / name


def given_a_volume(client, size=384 * KIB):
    src, dst, vid = make_pool("src"), make_pool("dst"), str(uuid.uuid4())
    assert client.create_volume(vid, f"{vid}.vhdx", src, size)[0] == 201
    return vid, f"{vid}.vhdx", src, dst


def test_a_fail_fault_fails_the_command_with_its_message_and_keeps_the_source(client, tmp_path):
    vid, name, src, dst = given_a_volume(client)
    original = pool_file(tmp_path, src, name).read_bytes()
    status, fault = client.add_fault(type="fail", command="MigrateVolumeCommand", message="WMI job 32769 failed")
    assert status == 201 and fault["times"] == 1

    _, record = client.submit(migrate_body(vid, name, src, dst))
    done = client.wait_for_state(record["id"])

    assert done["state"] == "failed"
    assert done["error"] == "WMI job 32769 failed"
    assert done["result"] is None
    assert pool_file(tmp_path, src, name).read_bytes() == original
    assert not pool_file(tmp_path, dst, name).exists()
    assert not pool_file(tmp_path, dst, name + ".partial").exists()
    assert client.locate(vid)[1]["locations"] == [{"pool": src["uuid"], "poolPath": src["path"], "size": 384 * KIB,
                                                           "online": True}]


def test_a_fault_is_used_up_after_its_times(client):
    client.add_fault(type="fail", times=2)
    outcomes = []
    for _ in range(3):
        vid, name, src, dst = given_a_volume(client)
        _, record = client.submit(migrate_body(vid, name, src, dst))
        outcomes.append(client.wait_for_state(record["id"])["state"])

    assert outcomes == ["failed", "failed", "succeeded"]
    assert client.request("GET", "/faults") == (200, {"faults": []})


def test_a_fault_for_another_volume_does_not_touch_this_one(client):
    client.add_fault(type="fail", volumeId="some-other-volume")
    vid, name, src, dst = given_a_volume(client)

    _, record = client.submit(migrate_body(vid, name, src, dst))

    assert client.wait_for_state(record["id"])["state"] == "succeeded"
    status, listed = client.request("GET", "/faults")
    assert status == 200 and [f["volumeId"] for f in listed["faults"]] == ["some-other-volume"]


def test_cleared_faults_no_longer_apply(client):
    client.add_fault(type="fail", times=5)
    assert client.request("DELETE", "/faults") == (200, {"cleared": 1})
    vid, name, src, dst = given_a_volume(client)

    _, record = client.submit(migrate_body(vid, name, src, dst))

    assert client.wait_for_state(record["id"])["state"] == "succeeded"


def test_a_hung_command_that_is_aborted_leaves_the_source_intact_and_no_partial_copy(client, tmp_path):
    vid, name, src, dst = given_a_volume(client)
    original = pool_file(tmp_path, src, name).read_bytes()
    client.add_fault(type="hang", volumeId=vid)
    _, record = client.submit(migrate_body(vid, name, src, dst))
    running = client.wait_for_state(record["id"], "running")
    assert running["bytesDone"] == 0

    status, aborted = client.abort(record["id"])

    assert status == 200 and aborted["state"] == "aborted"
    assert client.command(record["id"])[1]["state"] == "aborted"
    assert pool_file(tmp_path, src, name).read_bytes() == original
    assert not pool_file(tmp_path, dst, name).exists()
    assert not pool_file(tmp_path, dst, name + ".partial").exists()


def test_aborting_a_copy_in_progress_removes_the_partial_copy(tmp_path):
    # Throttled to 1 MiB/s with 64 KiB chunks: a 4 MiB copy is still running when the abort comes.
    agent = HostAgent("h1", tmp_path, bandwidth_mib_s=1, chunk_size=64 * KIB)
    try:
        client = HostClient.for_app(create_app({"h1": agent}), "h1")
        vid, name, src, dst = given_a_volume(client, size=4096 * KIB)
        original = pool_file(tmp_path, src, name).read_bytes()
        _, record = client.submit(migrate_body(vid, name, src, dst))
        wait_until(lambda: client.command(record["id"])[1]["bytesDone"] > 0, what="copy progress")

        status, aborted = client.abort(record["id"])

        assert status == 200 and aborted["state"] in ("aborted", "succeeded")
        if aborted["state"] == "aborted":  # an abort can only lose the race to a finished copy
            assert 0 < aborted["bytesDone"] < aborted["bytesTotal"]
            assert pool_file(tmp_path, src, name).read_bytes() == original
            assert not pool_file(tmp_path, dst, name).exists()
        assert not pool_file(tmp_path, dst, name + ".partial").exists()
    finally:
        agent.close()


@pytest.mark.parametrize(
    "fault, expected",
    [
        ({"type": "explode"}, "'type'"),
        ({"type": "fail", "command": "StopCommand"}, "'command'"),
        ({"type": "fail", "times": 0}, "'times'"),
        ({"type": "hang", "message": 3}, "'message'"),
        ({"type": "fail", "nth": 0}, "'nth'"),
        ({"type": "fail", "volumeIndex": -1}, "'volumeIndex'"),
        ({"type": "delay", "seconds": "soon"}, "'seconds'"),
        ({"type": "slow"}, "'bandwidth'"),
    ],
)
def test_an_invalid_fault_is_rejected(client, fault, expected):
    status, answer = client.add_fault(**fault)

    assert status == 400 and expected in answer["error"]
    assert client.request("GET", "/faults") == (200, {"faults": []})


def test_an_nth_fault_lets_the_first_commands_pass_and_fails_the_nth(client):
    client.add_fault(type="fail", nth=3, message="third time unlucky")
    outcomes = []
    for _ in range(4):
        vid, name, src, dst = given_a_volume(client, size=64 * KIB)
        _, record = client.submit(migrate_body(vid, name, src, dst))
        outcomes.append(client.wait_for_state(record["id"])["state"])

    assert outcomes == ["succeeded", "succeeded", "failed", "succeeded"]


def test_a_delay_fault_holds_the_command_running_before_it_copies(client):
    vid, name, src, dst = given_a_volume(client)
    client.add_fault(type="delay", seconds=0.3)

    _, record = client.submit(migrate_body(vid, name, src, dst))
    running = client.wait_for_state(record["id"], "running")
    done = client.wait_for_state(record["id"])

    assert running["bytesDone"] == 0
    assert done["state"] == "succeeded"


def test_a_slow_fault_throttles_one_command_so_it_can_be_aborted_mid_copy(client, tmp_path):
    vid, name, src, dst = given_a_volume(client, size=1024 * KIB)
    client.add_fault(type="slow", bandwidth=0.25, volumeId=vid)
    _, record = client.submit(migrate_body(vid, name, src, dst))
    wait_until(lambda: client.command(record["id"])[1]["bytesDone"] > 0, what="copy progress")

    status, aborted = client.abort(record["id"])

    assert status == 200 and aborted["state"] == "aborted"
    assert 0 < aborted["bytesDone"] < aborted["bytesTotal"]
    assert not pool_file(tmp_path, dst, name + ".partial").exists()


def test_a_fault_plan_is_loaded_per_host_by_the_agent_server(tmp_path):
    from agent.backends.faults import parse_fault_plan
    from agent.serve import AgentServer

    plan = parse_fault_plan({"faults": [{"type": "fail", "host": "hv-2", "message": "only hv-2"},
                                        {"type": "delay", "seconds": 1}]})
    with AgentServer(["hv-1", "hv-2"], tmp_path, fault_plan=plan) as server:
        faults = {name: [(f["type"], f.get("message")) for f in host.list_faults()]
                  for name, host in server.hosts.items()}

    assert faults == {"hv-1": [("delay", None)], "hv-2": [("fail", "only hv-2"), ("delay", None)]}


@pytest.mark.parametrize(
    "plan, expected",
    [
        ("not a list", "JSON list"),
        ([{"type": "crash", "host": "bad host"}], "entry 0: invalid host name"),
        ([{"type": "delay"}], "entry 0: a 'delay' fault needs field 'seconds'"),
        ([{"type": "slow", "bandwidth": 0}], "'bandwidth' must be a positive number"),
    ],
)
def test_an_invalid_fault_plan_is_refused(plan, expected):
    from agent.backends.faults import parse_fault_plan
    from agent.errors import InvalidRequest

    with pytest.raises(InvalidRequest) as exc:
        parse_fault_plan(plan)
    assert expected in exc.value.message
