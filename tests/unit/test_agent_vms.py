"""The VMs running on a host: POST/GET /vms, GET/DELETE /vms/{name}, kept across restarts."""
from __future__ import annotations

import uuid

import pytest

from agent.host import HostAgent
from agent.server import create_app
from agent.testing import HostClient, make_pool

VM = "i-2-5-VM"


@pytest.fixture
def agent(tmp_path):
    host = HostAgent("h1", tmp_path)
    yield host
    host.close()


@pytest.fixture
def client(agent):
    return HostClient.for_app(create_app({"h1": agent}), "h1")


def a_volume(pool=None):
    vid = str(uuid.uuid4())
    return {"id": vid, "path": f"{vid}.vhdx", "pool": pool or make_pool()}


def test_registering_a_vm_lists_it_with_its_volumes_and_where_they_are(client):
    volume, vm_uuid = a_volume(), str(uuid.uuid4())

    status, vm = client.register_vm(VM, vm_uuid, [volume])

    assert status == 201
    assert vm == {"name": VM, "uuid": vm_uuid, "host": "h1", "state": "Running",
                  "volumes": [{"id": volume["id"], "path": volume["path"], "pool": volume["pool"]["uuid"],
                               "poolPath": volume["pool"]["path"]}]}
    assert client.vm(VM) == (200, vm)
    assert client.vms() == (200, {"vms": [vm]})
    assert client.locate(volume["id"])[1]["vm"] == VM  # the volume is known to the host now


def test_registering_the_same_vm_again_is_idempotent(client):
    volume, vm_uuid = a_volume(), str(uuid.uuid4())
    _, first = client.register_vm(VM, vm_uuid, [volume])

    status, again = client.register_vm(VM, vm_uuid, [volume])

    assert status == 200 and again == first
    assert len(client.vms()[1]["vms"]) == 1


def test_an_unknown_vm_is_not_found_and_a_removed_vm_is_gone(client):
    assert client.vm("i-9-9-VM")[0] == 404
    client.register_vm(VM, str(uuid.uuid4()), [a_volume()])

    status, removed = client.request("DELETE", f"/vms/{VM}")

    assert status == 200 and removed["name"] == VM
    assert client.vm(VM)[0] == 404
    assert client.request("DELETE", f"/vms/{VM}")[0] == 404


def test_registered_vms_survive_an_agent_restart(tmp_path):
    volume, vm_uuid = a_volume(), str(uuid.uuid4())
    first = HostAgent("h1", tmp_path)
    HostClient.for_app(create_app({"h1": first}), "h1").register_vm(VM, vm_uuid, [volume])
    first.close()

    second = HostAgent("h1", tmp_path)
    try:
        status, vm = HostClient.for_app(create_app({"h1": second}), "h1").vm(VM)
        assert status == 200 and vm["uuid"] == vm_uuid and vm["volumes"][0]["id"] == volume["id"]
        assert second.guest.disk(volume["id"]) is not None
    finally:
        second.close()


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"name": None}, "'name'"),
        ({"uuid": "has space"}, "'uuid'"),
        ({"volumes": "disk"}, "'volumes'"),
        ({"volumes": [{"id": "v1", "path": "a/b", "pool": make_pool()}]}, "volumes[0]: field 'path'"),
        ({"volumes": [{"id": "v1", "path": "d.vhdx"}]}, "volumes[0]: field 'pool'"),
    ],
)
def test_an_invalid_vm_is_rejected_and_nothing_is_recorded(client, change, expected):
    body = {"name": VM, "uuid": str(uuid.uuid4()), "volumes": [a_volume()]}
    body.update(change)

    status, answer = client.request("POST", "/vms", json=body)

    assert status == 400 and expected in answer["error"]
    assert client.vms() == (200, {"vms": []})


def test_a_volume_named_twice_is_rejected(client):
    volume = a_volume()

    status, answer = client.register_vm(VM, str(uuid.uuid4()), [volume, volume])

    assert status == 400 and "twice" in answer["error"]
