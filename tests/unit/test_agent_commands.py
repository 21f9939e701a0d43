"""MigrateVolumeCommand on the simulated backend: the copy, its answer, idempotency, bad input."""
from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

import pytest

from agent.backends.simulated import _ChunkCopier
from agent.host import HostAgent
from agent.server import create_app
from agent.testing import HostClient, make_pool, migrate_body

KIB = 1024


@pytest.fixture
def agent(tmp_path):
    # A small chunk size so that even small test files are copied in several chunks.
    host = HostAgent("h1", tmp_path, chunk_size=64 * KIB)
    yield host
    host.close()


@pytest.fixture
def client(agent):
    return HostClient.for_app(create_app({"h1": agent}), "h1")


def pool_file(root: Path, pool: dict, name: str) -> Path:
    return root / pool["path"].lstrip("/") / name


def given_a_volume(client, size=512 * KIB + 7):
    src, dst, vid = make_pool("src"), make_pool("dst"), str(uuid.uuid4())
    status, _ = client.create_volume(vid, f"{vid}.vhdx", src, size)
    assert status == 201
    return vid, f"{vid}.vhdx", src, dst


def command_files(root: Path) -> list[Path]:
    return sorted((root / ".agent" / "h1" / "commands").glob("*.json"))


def test_migrating_a_volume_copies_the_same_bytes_and_removes_the_source(client, tmp_path):
    vid, name, src, dst = given_a_volume(client)
    original = pool_file(tmp_path, src, name).read_bytes()

    status, record = client.submit(migrate_body(vid, name, src, dst))
    assert status == 202 and record["state"] == "accepted"
    done = client.wait_for_state(record["id"])

    assert done["state"] == "succeeded", done
    assert done["result"] == {"volumePath": name, "pool": dst["uuid"]}
    assert done["error"] is None
    assert done["bytesDone"] == done["bytesTotal"] == len(original)
    assert pool_file(tmp_path, dst, name).read_bytes() == original
    assert not pool_file(tmp_path, src, name).exists()
    assert not pool_file(tmp_path, dst, name + ".partial").exists()


def test_after_a_migration_the_volume_is_located_on_the_destination_pool_only(client):
    vid, name, src, dst = given_a_volume(client)
    _, record = client.submit(migrate_body(vid, name, src, dst))
    client.wait_for_state(record["id"])

    status, answer = client.locate(vid)

    assert status == 200
    assert answer["locations"] == [{"pool": dst["uuid"], "poolPath": dst["path"], "size": 512 * KIB + 7,
                                    "online": True}]


def test_reposting_a_command_id_starts_nothing(client, agent):
    vid, name, src, dst = given_a_volume(client)
    body = migrate_body(vid, name, src, dst)
    _, first = client.submit(body)
    done = client.wait_for_state(first["id"])

    status, again = client.submit(body)

    assert status == 200
    assert again == done
    assert agent.status()["peakStorageMigrations"] == 1
    assert client.command(first["id"]) == (200, done)


def test_the_same_command_posted_many_times_at_once_starts_one_copy(tmp_path):
    import threading

    agent = HostAgent("h1", tmp_path, bandwidth_mib_s=4, chunk_size=64 * KIB)
    try:
        app = create_app({"h1": agent})
        vid, name, src, dst = given_a_volume(HostClient.for_app(app, "h1"))
        body = migrate_body(vid, name, src, dst)
        answers = []

        def post():
            answers.append(HostClient.for_app(app, "h1").submit(body))

        threads = [threading.Thread(target=post) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        done = HostClient.for_app(app, "h1").wait_for_state(body["id"])

        assert sorted(status for status, _ in answers) == [200] * 7 + [202]
        assert {record["id"] for _, record in answers} == {body["id"]}
        assert done["state"] == "succeeded"
        assert agent.status()["peakStorageMigrations"] == 1
        assert command_files(tmp_path) == [tmp_path / ".agent" / "h1" / "commands" / f"{body['id']}.json"]
    finally:
        agent.close()


def test_a_missing_source_file_fails_the_command_with_an_error_naming_the_file(client, tmp_path):
    src, dst = make_pool("src"), make_pool("dst")

    _, record = client.submit(migrate_body("vol-1", "nowhere.vhdx", src, dst))
    done = client.wait_for_state(record["id"])

    assert done["state"] == "failed"
    assert "nowhere.vhdx" in done["error"] and "does not exist" in done["error"]
    assert not pool_file(tmp_path, dst, "nowhere.vhdx.partial").exists()


def test_an_os_error_during_the_copy_fails_the_command_and_keeps_the_source(client, tmp_path, monkeypatch):
    vid, name, src, dst = given_a_volume(client)
    original = pool_file(tmp_path, src, name).read_bytes()
    real_copy = _ChunkCopier.copy

    def copy_then_break(self, src_fd, dst_fd, offset, count):
        if offset > 0:  # the first chunk lands, so there is a partial copy to clean up
            raise OSError(errno.EIO, "Input/output error")
        return real_copy(self, src_fd, dst_fd, offset, count)

    monkeypatch.setattr(_ChunkCopier, "copy", copy_then_break)
    _, record = client.submit(migrate_body(vid, name, src, dst))
    done = client.wait_for_state(record["id"])

    assert done["state"] == "failed"
    assert "copying" in done["error"] and "Input/output error" in done["error"]
    assert pool_file(tmp_path, src, name).read_bytes() == original
    assert not pool_file(tmp_path, dst, name).exists()
    assert not pool_file(tmp_path, dst, name + ".partial").exists()


def test_the_copy_falls_back_when_copy_file_range_is_not_supported(client, tmp_path, monkeypatch):
    vid, name, src, dst = given_a_volume(client)
    original = pool_file(tmp_path, src, name).read_bytes()

    def unsupported(*args, **kwargs):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr("agent.backends.simulated.os.copy_file_range", unsupported, raising=False)
    monkeypatch.setattr("agent.backends.simulated.os.sendfile", unsupported, raising=False)
    _, record = client.submit(migrate_body(vid, name, src, dst))
    done = client.wait_for_state(record["id"])

    assert done["state"] == "succeeded", done
    assert pool_file(tmp_path, dst, name).read_bytes() == original


def test_aborting_a_finished_command_changes_nothing(client, tmp_path):
    vid, name, src, dst = given_a_volume(client)
    _, record = client.submit(migrate_body(vid, name, src, dst))
    done = client.wait_for_state(record["id"])

    status, after = client.abort(record["id"])

    assert status == 200 and after == done
    assert pool_file(tmp_path, dst, name).exists()


def test_unknown_commands_and_hosts_are_not_found(client, agent):
    assert client.command("no-such-command")[0] == 404
    assert client.abort("no-such-command")[0] == 404
    other = HostClient.for_app(create_app({"h1": agent}), "h9")
    status, answer = other.status()
    assert status == 404 and "h9" in answer["error"]


def _valid_body():
    return migrate_body("vol-1", "disk.vhdx", make_pool("src"), make_pool("dst"), command_id="cmd-1")


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"type": "StartCommand"}, "unknown command type"),
        ({"type": None}, "'type'"),
        ({"id": None}, "'id'"),
        ({"id": "../../etc"}, "'id'"),
        ({"volumeId": None}, "'volumeId'"),
        ({"volumePath": None}, "'volumePath'"),
        ({"volumePath": "a/b.vhdx"}, "'volumePath'"),
        ({"srcPool": None}, "'srcPool'"),
        ({"pool": {"uuid": "x"}}, "pool: missing field 'path'"),
        ({"pool": "pool-b"}, "'pool'"),
        ({"wait": "soon"}, "'wait'"),
        ({"attachedVmName": 7}, "'attachedVmName'"),
    ],
)
def test_an_invalid_command_is_rejected_and_nothing_is_recorded(client, tmp_path, change, expected):
    body = _valid_body()
    body.update(change)

    status, answer = client.submit(body)

    assert status == 400 and expected in answer["error"]
    assert command_files(tmp_path) == []
    assert client.command("cmd-1")[0] == 404


def test_migrating_to_the_same_pool_is_rejected(client, tmp_path):
    pool = make_pool("same")
    status, answer = client.submit(migrate_body("vol-1", "disk.vhdx", pool, pool))

    assert status == 400 and "same pool" in answer["error"]
    assert command_files(tmp_path) == []


@pytest.mark.parametrize("data", ["{not json", "", "[1, 2]", "null"])
def test_a_malformed_body_is_a_bad_request_not_a_server_error(client, tmp_path, data):
    status, answer = client.submit(data=data)

    assert status == 400 and answer["error"]
    assert command_files(tmp_path) == []
