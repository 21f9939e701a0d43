"""The agent's volume files and registry: POST /volumes and GET /volumes/{id}."""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from agent.host import HostAgent
from agent.server import create_app
from agent.testing import HostClient, make_pool

KIB = 1024


@pytest.fixture
def agent(tmp_path):
    host = HostAgent("h1", tmp_path)
    yield host
    host.close()


@pytest.fixture
def client(agent):
    return HostClient.for_app(create_app({"h1": agent}), "h1")


def pool_file(root: Path, pool: dict, name: str) -> Path:
    return root / pool["path"].lstrip("/") / name


def test_creating_a_volume_writes_a_file_of_exactly_the_requested_size(client, tmp_path):
    pool, vid = make_pool(), str(uuid.uuid4())

    status, answer = client.create_volume(vid, f"{vid}.vhdx", pool, 256 * KIB + 3, vm="i-2-10-VM")

    assert status == 201
    assert answer == {"id": vid, "path": f"{vid}.vhdx", "pool": pool["uuid"], "size": 256 * KIB + 3,
                      "created": True}
    assert pool_file(tmp_path, pool, f"{vid}.vhdx").stat().st_size == 256 * KIB + 3


def test_creating_the_same_volume_again_leaves_the_file_alone(client, tmp_path):
    pool, vid = make_pool(), str(uuid.uuid4())
    client.create_volume(vid, "disk.vhdx", pool, 300 * KIB)
    before = pool_file(tmp_path, pool, "disk.vhdx").read_bytes()

    status, answer = client.create_volume(vid, "disk.vhdx", pool, 300 * KIB)

    assert status == 200 and answer["created"] is False
    assert pool_file(tmp_path, pool, "disk.vhdx").read_bytes() == before


def test_creating_a_volume_over_a_file_of_another_size_is_a_conflict(client, tmp_path):
    pool, vid = make_pool(), str(uuid.uuid4())
    client.create_volume(vid, "disk.vhdx", pool, 300 * KIB)

    status, answer = client.create_volume(vid, "disk.vhdx", pool, 500 * KIB)

    assert status == 409 and "307200 bytes" in answer["error"]
    assert pool_file(tmp_path, pool, "disk.vhdx").stat().st_size == 300 * KIB


def test_a_created_volume_is_located_in_its_pool(client):
    pool, vid = make_pool(), str(uuid.uuid4())
    client.create_volume(vid, "disk.vhdx", pool, 256 * KIB, vm="i-2-10-VM")

    status, answer = client.locate(vid)

    assert status == 200
    assert answer == {"id": vid, "path": "disk.vhdx", "vm": "i-2-10-VM",
                      "locations": [{"pool": pool["uuid"], "poolPath": pool["path"], "size": 256 * KIB,
                                         "online": True}]}


def test_locating_a_volume_the_agent_never_heard_of_is_not_found(client):
    status, answer = client.locate(str(uuid.uuid4()))

    assert status == 404 and "unknown volume" in answer["error"]


@pytest.mark.parametrize(
    "change, field",
    [
        ({"size": -1}, "size"),
        ({"size": "big"}, "size"),
        ({"path": "../escape.vhdx"}, "path"),
        ({"path": "disk.vhdx.partial"}, "path"),
        ({"pool": {"uuid": "p", "path": "/shared/../.."}}, "path"),
        ({"pool": {"path": "/shared/x"}}, "uuid"),
        ({"id": None}, "id"),
    ],
)
def test_an_invalid_volume_is_rejected_and_nothing_is_written(client, tmp_path, change, field):
    body = {"id": str(uuid.uuid4()), "path": "disk.vhdx", "pool": make_pool(), "size": KIB, "vm": None}
    body.update(change)

    status, answer = client.request("POST", "/volumes", json=body)

    assert status == 400 and field in answer["error"]
    assert not (tmp_path / "shared").exists()
