"""Pools going offline (an SMB share going away) and back online, mid-copy and in between."""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from agent.host import HostAgent
from agent.serve import AgentServer
from agent.server import create_app
from agent.testing import HostClient, make_pool, migrate_body, mws_body, wait_until

KIB = 1024


def pool_file(root: Path, pool: dict, name: str) -> Path:
    return root / pool["path"].lstrip("/") / name


@pytest.fixture
def agent(tmp_path):
    # Throttled to 0.5 MiB/s with 64 KiB chunks: a 2 MiB copy is still running when the pool goes
    # (an offline pool is noticed within a fraction of a second, so the tests stay short).
    host = HostAgent("h1", tmp_path, bandwidth_mib_s=0.5, chunk_size=64 * KIB)
    yield host
    host.close()


@pytest.fixture
def client(agent):
    return HostClient.for_app(create_app({"h1": agent}), "h1")


def given_a_volume(client, size=2048 * KIB):
    src, dst, vid = make_pool("src"), make_pool("dst"), str(uuid.uuid4())
    assert client.create_volume(vid, f"{vid}.vhdx", src, size)[0] == 201
    return vid, f"{vid}.vhdx", src, dst


@pytest.mark.parametrize("which", ["destination", "source"])
def test_a_pool_going_offline_mid_copy_fails_the_migration_and_keeps_the_source(client, tmp_path, which):
    vid, name, src, dst = given_a_volume(client)
    original = pool_file(tmp_path, src, name).read_bytes()
    _, record = client.submit(migrate_body(vid, name, src, dst))
    wait_until(lambda: client.command(record["id"])[1]["bytesDone"] > 0, what="copy progress")
    pool = dst if which == "destination" else src

    status, answer = client.pool_offline(uuid=pool["uuid"])
    done = client.wait_for_state(record["id"])

    assert status == 200 and answer == {"uuid": pool["uuid"], "path": pool["path"], "online": False}
    assert done["state"] == "failed"
    assert f"{which} pool {pool['uuid']} ({pool['path']}) is offline" in done["error"]
    assert 0 < done["bytesDone"] < done["bytesTotal"]
    assert pool_file(tmp_path, src, name).read_bytes() == original
    assert not pool_file(tmp_path, dst, name).exists()
    assert not pool_file(tmp_path, dst, name + ".partial").exists()
    locations = client.locate(vid)[1]["locations"]
    assert [(loc["pool"], loc["online"]) for loc in locations] == [(src["uuid"], which != "source")]


def test_a_migration_to_a_pool_that_is_back_online_succeeds(client, tmp_path):
    vid, name, src, dst = given_a_volume(client, size=128 * KIB)
    client.pool_offline(path=dst["path"])
    _, first = client.submit(migrate_body(vid, name, src, dst))
    assert client.wait_for_state(first["id"])["state"] == "failed"

    status, answer = client.pool_online(uuid=dst["uuid"])
    _, second = client.submit(migrate_body(vid, name, src, dst))

    assert status == 200 and answer["online"] is True
    assert client.wait_for_state(second["id"])["state"] == "succeeded"
    assert pool_file(tmp_path, dst, name).stat().st_size == 128 * KIB


def test_offline_is_seen_by_every_agent_sharing_the_root(client, tmp_path):
    pool = make_pool("shared-smb")
    client.create_volume(str(uuid.uuid4()), "disk.vhdx", pool, KIB)
    other = HostAgent("h2", tmp_path)
    try:
        other_client = HostClient.for_app(create_app({"h2": other}), "h2")
        other_client.create_volume(str(uuid.uuid4()), "disk2.vhdx", pool, KIB)

        client.pool_offline(path=pool["path"])

        assert other_client.request("GET", "/pools")[1]["pools"] == [{**pool, "online": False}]
        status, answer = other_client.create_volume(str(uuid.uuid4()), "disk3.vhdx", pool, KIB)
        assert status == 409 and "offline" in answer["error"]
    finally:
        other.close()


def test_guests_do_not_write_to_an_offline_pool(client, agent):
    pool = make_pool()
    vid = str(uuid.uuid4())
    client.create_volume(vid, "disk.vhdx", pool, 64 * KIB)
    client.register_vm("i-2-5-VM", str(uuid.uuid4()), [{"id": vid, "path": "disk.vhdx", "pool": pool}])
    client.pool_offline(uuid=pool["uuid"])

    assert agent.guest.write_once(agent.guest.disk(vid)) is None
    client.pool_online(uuid=pool["uuid"])
    assert agent.guest.write_once(agent.guest.disk(vid)) is not None


@pytest.mark.parametrize(
    "body, status, expected",
    [({}, 400, "'uuid' or field 'path'"), ({"path": "/a/../b"}, 400, "path"), ({"uuid": "nope"}, 404, "unknown pool")],
)
def test_naming_a_pool_badly_is_refused(client, body, status, expected):
    answer = client.request("POST", "/pools/offline", json=body)

    assert answer[0] == status and expected in answer[1]["error"]


def test_a_vm_migration_to_an_offline_pool_fails_and_leaves_everything_on_the_source(tmp_path):
    with AgentServer(["hv-a", "hv-b"], tmp_path, chunk_size=64 * KIB) as server:
        a = HostClient.for_url(server.base_url("hv-a"))
        src, dst, vid = make_pool("a-local"), make_pool("b-local"), str(uuid.uuid4())
        volume = {"id": vid, "path": "disk.vhdx", "pool": src}
        a.create_volume(vid, "disk.vhdx", src, 128 * KIB)
        a.register_vm("i-2-5-VM", "vm-1", [volume])
        a.pool_offline(path=dst["path"])
        body = mws_body("i-2-5-VM", "vm-1", "hv-b", server.base_url("hv-b"), [(volume, dst)])

        a.submit(body)
        done = a.wait_for_state(body["id"])

        assert done["state"] == "failed" and f"at volume {vid}" in done["error"] and "offline" in done["error"]
        assert pool_file(tmp_path, src, "disk.vhdx").stat().st_size == 128 * KIB
        assert not pool_file(tmp_path, dst, "disk.vhdx.partial").exists()
        assert a.vm("i-2-5-VM")[0] == 200
