"""The agent over real HTTP (AgentServer on port 0) and its command line."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests

from agent.main import main
from agent.serve import AgentServer
from agent.testing import HostClient, make_pool, migrate_body

KIB = 1024
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(tmp_path):
    srv = AgentServer(["hv-1", "hv-2"], tmp_path).start()
    yield srv
    srv.shutdown()


def test_the_server_lists_the_hosts_it_serves(server):
    assert server.url == f"http://127.0.0.1:{server.port}" and server.port > 0
    assert requests.get(f"{server.url}/hosts", timeout=10).json() == {"hosts": ["hv-1", "hv-2"]}
    status, answer = HostClient.for_url(server.base_url("hv-2")).status()
    assert status == 200
    assert answer == {"host": "hv-2", "maxStorageMigrations": 2, "running": 0, "queued": 0,
                      "peakStorageMigrations": 0, "guestWritesPerSecond": 0.0}


def test_a_migration_over_http_moves_the_volume_and_each_host_keeps_its_own_commands(server, tmp_path):
    h1, h2 = HostClient.for_url(server.base_url("hv-1")), HostClient.for_url(server.base_url("hv-2"))
    src, dst, vid = make_pool("src"), make_pool("dst"), str(uuid.uuid4())
    assert h1.create_volume(vid, "disk.vhdx", src, 1024 * KIB)[0] == 201
    original = (tmp_path / "shared" / "src" / "disk.vhdx").read_bytes()

    status, record = h1.submit(migrate_body(vid, "disk.vhdx", src, dst))
    assert status == 202
    done = h1.wait_for_state(record["id"])

    assert done["state"] == "succeeded"
    assert (tmp_path / "shared" / "dst" / "disk.vhdx").read_bytes() == original
    assert h2.command(record["id"])[0] == 404
    assert h2.locate(vid)[0] == 404


def test_malformed_json_over_http_is_a_400_with_an_error(server):
    resp = requests.post(server.base_url("hv-1") + "/commands", data="{oops",
                         headers={"Content-Type": "application/json"}, timeout=10)

    assert resp.status_code == 400 and "not valid JSON" in resp.json()["error"]


def test_shutting_down_twice_is_harmless(tmp_path):
    srv = AgentServer(["hv-1"], tmp_path).start()
    srv.shutdown()
    srv.shutdown()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{srv.url}/hosts", timeout=2)


def test_the_command_line_requires_a_host():
    with pytest.raises(SystemExit) as exc:
        main(["--root", "somewhere"])
    assert exc.value.code == 2


def test_the_command_line_refuses_an_invalid_fault_plan(tmp_path, capsys):
    plan = tmp_path / "plan.json"
    plan.write_text('[{"type": "explode"}]')

    assert main(["--host", "hv-1", "--root", str(tmp_path), "--port", "0", "--fault-plan", str(plan)]) == 2
    assert "fault plan entry 0" in capsys.readouterr().err


def test_the_command_line_prints_its_url_and_stops_cleanly_on_sigterm(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "--host", "hv-1", "--root", str(tmp_path), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=PROJECT_ROOT,
    )
    try:
        line = proc.stdout.readline()
        url = line.split(" on ", 1)[1].split()[0]
        assert requests.get(f"{url}/hosts", timeout=10).json() == {"hosts": ["hv-1"]}

        proc.send_signal(signal.SIGTERM)

        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
