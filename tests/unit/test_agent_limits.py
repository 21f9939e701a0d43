"""The per-host storage-migration limit: excess commands wait in a FIFO queue, never run."""
from __future__ import annotations

import uuid

from agent.host import HostAgent
from agent.server import create_app
from agent.testing import HostClient, make_pool, migrate_body, wait_until

KIB = 1024


def given_volumes(client, count, size=512 * KIB):
    src, dst = make_pool("src"), make_pool("dst")
    volumes = []
    for _ in range(count):
        vid = str(uuid.uuid4())
        assert client.create_volume(vid, f"{vid}.vhdx", src, size)[0] == 201
        volumes.append((vid, f"{vid}.vhdx"))
    return volumes, src, dst


def test_with_a_limit_of_one_throttled_commands_run_one_at_a_time_and_all_succeed(tmp_path):
    agent = HostAgent("h1", tmp_path, max_storage_migrations=1, bandwidth_mib_s=4, chunk_size=64 * KIB)
    try:
        client = HostClient.for_app(create_app({"h1": agent}), "h1")
        volumes, src, dst = given_volumes(client, 3)

        ids = [client.submit(migrate_body(vid, name, src, dst))[1]["id"] for vid, name in volumes]
        states = [client.wait_for_state(cid)["state"] for cid in ids]

        assert states == ["succeeded"] * 3
        status = client.status()[1]
        assert status["peakStorageMigrations"] == 1
        assert status["maxStorageMigrations"] == 1
        assert (status["running"], status["queued"]) == (0, 0)
    finally:
        agent.close()


def test_commands_beyond_the_limit_wait_in_arrival_order(tmp_path):
    agent = HostAgent("h1", tmp_path, max_storage_migrations=2, chunk_size=64 * KIB)
    try:
        client = HostClient.for_app(create_app({"h1": agent}), "h1")
        volumes, src, dst = given_volumes(client, 4)
        client.add_fault(type="hang", times=4)

        ids = [client.submit(migrate_body(vid, name, src, dst))[1]["id"] for vid, name in volumes]
        wait_until(lambda: client.status()[1]["running"] == 2, what="two running commands")

        assert client.status()[1]["queued"] == 2
        assert [client.command(cid)[1]["state"] for cid in ids] == ["running", "running", "accepted", "accepted"]

        client.abort(ids[0])  # frees a slot: the oldest queued command starts, not the newest
        client.wait_for_state(ids[2], "running")
        assert client.command(ids[3])[1]["state"] == "accepted"

        for cid in ids[1:]:
            client.abort(cid)
        assert [client.command(cid)[1]["state"] for cid in ids] == ["aborted"] * 4
        assert client.status()[1]["peakStorageMigrations"] == 2
    finally:
        agent.close()


def test_aborting_a_queued_command_means_it_never_runs(tmp_path):
    agent = HostAgent("h1", tmp_path, max_storage_migrations=1, chunk_size=64 * KIB)
    try:
        client = HostClient.for_app(create_app({"h1": agent}), "h1")
        (first, second), src, dst = given_volumes(client, 2)
        client.add_fault(type="hang", volumeId=first[0])
        blocker = client.submit(migrate_body(*first, src, dst))[1]["id"]
        client.wait_for_state(blocker, "running")
        queued = client.submit(migrate_body(*second, src, dst))[1]["id"]

        status, aborted = client.abort(queued)
        client.abort(blocker)

        assert status == 200 and aborted["state"] == "aborted"
        assert client.command(queued)[1]["bytesDone"] == 0
        assert client.locate(second[0])[1]["locations"][0]["pool"] == src["uuid"]
    finally:
        agent.close()


def test_a_second_command_for_a_volume_being_migrated_fails_without_touching_it(tmp_path):
    agent = HostAgent("h1", tmp_path, chunk_size=64 * KIB)
    try:
        client = HostClient.for_app(create_app({"h1": agent}), "h1")
        ((vid, name),), src, dst = given_volumes(client, 1)
        client.add_fault(type="hang", volumeId=vid)
        first = client.submit(migrate_body(vid, name, src, dst))[1]["id"]
        client.wait_for_state(first, "running")

        second = client.submit(migrate_body(vid, name, src, make_pool("elsewhere")))[1]["id"]
        record = client.wait_for_state(second)

        assert record["state"] == "failed" and first in record["error"]
        assert client.command(first)[1]["state"] == "running"
        client.abort(first)
        assert client.locate(vid)[1]["locations"][0]["pool"] == src["uuid"]
    finally:
        agent.close()
