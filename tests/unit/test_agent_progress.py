"""What a command reports while it runs (bytes, rate, ETA) and the truth about a volume's data."""
from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

from agent.host import HostAgent
from agent.server import create_app
from agent.testing import HostClient, make_pool, migrate_body, wait_until

KIB = 1024


def pool_file(root: Path, pool: dict, name: str) -> Path:
    return root / pool["path"].lstrip("/") / name


def test_a_running_copy_reports_its_rate_and_eta_and_a_finished_one_an_eta_of_zero(tmp_path):
    agent = HostAgent("h1", tmp_path, bandwidth_mib_s=1, chunk_size=64 * KIB)
    try:
        client = HostClient.for_app(create_app({"h1": agent}), "h1")
        src, dst, vid = make_pool("src"), make_pool("dst"), str(uuid.uuid4())
        client.create_volume(vid, "disk.vhdx", src, 512 * KIB)
        _, accepted = client.submit(migrate_body(vid, "disk.vhdx", src, dst))
        assert (accepted["rate"], accepted["eta"], accepted["recopiedBytes"]) == (0, None, 0)

        running = wait_until(lambda: (r := client.command(accepted["id"])[1])["state"] == "running"
                             and r["rate"] > 0 and r["bytesDone"] < r["bytesTotal"] and r, what="a measured rate")
        done = client.wait_for_state(accepted["id"])

        left = running["bytesTotal"] - running["bytesDone"]
        assert running["eta"] == round(left / running["rate"], 1)
        assert done["state"] == "succeeded" and done["eta"] == 0
    finally:
        agent.close()


def test_five_migrations_posted_at_once_run_two_at_a_time_and_all_complete(tmp_path):
    agent = HostAgent("h1", tmp_path, bandwidth_mib_s=2, chunk_size=64 * KIB)
    try:
        client = HostClient.for_app(create_app({"h1": agent}), "h1")
        src, dst = make_pool("src"), make_pool("dst")
        bodies = []
        for _ in range(5):
            vid = str(uuid.uuid4())
            client.create_volume(vid, f"{vid}.vhdx", src, 512 * KIB)
            bodies.append(migrate_body(vid, f"{vid}.vhdx", src, dst))

        ids = [client.submit(body)[1]["id"] for body in bodies]
        states = [client.wait_for_state(cid)["state"] for cid in ids]

        assert states == ["succeeded"] * 5
        assert client.status()[1]["peakStorageMigrations"] == 2
    finally:
        agent.close()


def test_a_volume_can_be_located_with_the_checksum_of_each_copy(tmp_path):
    agent = HostAgent("h1", tmp_path)
    try:
        client = HostClient.for_app(create_app({"h1": agent}), "h1")
        pool, vid = make_pool(), str(uuid.uuid4())
        client.create_volume(vid, "disk.vhdx", pool, 100 * KIB)
        expected = hashlib.sha256(pool_file(tmp_path, pool, "disk.vhdx").read_bytes()).hexdigest()

        plain = client.locate(vid)[1]
        status, answer = client.request("GET", f"/volumes/{vid}?checksum=1")

        assert "sha256" not in plain["locations"][0]
        assert status == 200 and answer["locations"][0]["sha256"] == expected
    finally:
        agent.close()
