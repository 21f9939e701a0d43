"""The ``motion`` client subcommands against a running ``motion up --data-dir DIR``, as an operator
uses them: names or UUIDs, ``--json``, ``--wait``, and exit codes 0 / 1 / 2."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]


class Running:
    def __init__(self, data_dir: Path, port: int, log: Path):
        self.data_dir, self.base, self.log = data_dir, f"http://127.0.0.1:{port}", log
        self.agent = json.loads((data_dir / "endpoints.json").read_text())["agent"]


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOTION_", "CLOUDSTACK_"))}
    return {**env, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT), **extra}


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("up")
    port = free_port()
    with open(tmp / "up.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "motion.cli", "up", "--data-dir", str(tmp / "data"),
                                 "--port", str(port), "--bandwidth", "4"], cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT, env=clean_env())
    try:
        wait_until(lambda: (tmp / "data" / "endpoints.json").exists() or proc.poll() is not None,
                   timeout=90, what="motion up")
        assert proc.poll() is None, (tmp / "up.log").read_text()
        yield Running(tmp / "data", port, tmp / "up.log")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def motion(running: Running, *args: str, data_dir: bool = True, **kw) -> subprocess.CompletedProcess:
    argv = [*args, "--data-dir", str(running.data_dir)] if data_dir else list(args)
    return subprocess.run([sys.executable, "-m", "motion.cli", *argv], cwd=kw.pop("cwd", ROOT),
                          capture_output=True, text=True, env=kw.pop("env", clean_env()), timeout=180)


def ok_json(done: subprocess.CompletedProcess):
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_pools_for_a_volume_lists_suitable_pools_first_with_reasons_for_the_others(running):
    pools = ok_json(motion(running, "pools", "for", "web-1-root", "--json"))
    assert pools[0]["name"] == "a-gold-2" and pools[0]["suitableformigration"] is True
    assert all(p["reasons"] for p in pools if not p["suitableformigration"])


def test_hosts_for_a_vm_are_listed_by_name_or_uuid(running):
    from motion.client import Client
    from motion.clientconfig import load

    conf = load(str(running.data_dir))
    [vm] = Client(conf["endpoint"], conf["key"], conf["secret"]).call(
        "listVirtualMachines", name="web-1")["virtualmachine"]
    by_name = ok_json(motion(running, "hosts", "for", "web-1", "--json"))
    by_uuid = ok_json(motion(running, "hosts", "for", vm["id"], "--json"))
    assert {h["name"] for h in by_name if h["suitableformigration"]} == {"hv-b1"}
    assert [h["id"] for h in by_uuid] == [h["id"] for h in by_name]


def test_migrate_volume_with_wait_follows_the_job_to_success(running):
    done = motion(running, "migrate", "volume", "db-1-root", "zone-bulk", "--wait", "--json", "--interval", "0.2")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines[-1]["jobstatus"] == 1 and lines[-1]["jobresult"]["volume"]["storage"] == "zone-bulk"
    assert all(line["jobstatus"] == 0 for line in lines[:-1])
    jobid = lines[-1]["jobid"]
    shown = ok_json(motion(running, "jobs", "show", jobid, "--json"))
    assert shown["jobstatus"] == 1
    watched = motion(running, "jobs", "watch", jobid)
    assert watched.returncode == 0 and watched.stdout.strip() == f"job={jobid} result=succeeded"
    listed = ok_json(motion(running, "jobs", "list", "--status", "succeeded", "--json"))
    assert jobid in {j["jobid"] for j in listed}


def test_migrate_vm_prints_the_job_id_and_jobs_watch_exits_0_when_it_succeeds(running):
    done = motion(running, "migrate", "vm", "cache-1", "hv-a1", "--map", "cache-1-root=hv-a1-local")
    assert done.returncode == 0, done.stderr
    key, _, jobid = done.stdout.strip().partition("=")
    assert key == "job"
    watched = motion(running, "jobs", "watch", jobid, "--interval", "0.2")
    assert watched.returncode == 0, watched.stderr
    assert watched.stdout.splitlines()[-1] == f"job={jobid} result=succeeded"


def test_a_failing_migration_exits_1_with_the_agent_error_on_stderr(running):
    fault = {"type": "fail", "command": "MigrateVolumeCommand", "message": "simulated WMI failure 32768"}
    requests.post(f"{running.agent}/hosts/hv-b2/faults", json=fault, timeout=10).raise_for_status()
    done = motion(running, "migrate", "volume", "batch-1-root", "zone-bulk", "--wait")
    assert done.returncode == 1
    assert "simulated WMI failure 32768" in done.stderr
    assert "result=failed code=530" in done.stdout.splitlines()[-1]


def test_a_refused_request_exits_1_and_a_name_that_matches_nothing_exits_2(running):
    refused = motion(running, "migrate", "volume", "web-1-root", "a-silver")
    assert refused.returncode == 1 and "storage tags do not match" in refused.stderr
    unknown = motion(running, "migrate", "volume", "no-such-volume", "a-gold-2")
    assert unknown.returncode == 2 and "no volume named 'no-such-volume'" in unknown.stderr


def test_config_get_and_set_change_the_global_configuration_through_the_api(running):
    assert ok_json(motion(running, "config", "set", "wait", "900", "--json"))["value"] == "900"
    assert ok_json(motion(running, "config", "get", "wait", "--json"))["value"] == "900"
    refused = motion(running, "config", "set", "wait", "soon")
    assert refused.returncode == 1 and "wait" in refused.stderr


def test_without_a_configuration_the_client_says_where_it_looked_and_exits_2(running, tmp_path):
    done = motion(running, "jobs", "list", data_dir=False, cwd=tmp_path, env=clean_env(HOME=str(tmp_path)))
    assert done.returncode == 2 and "CLOUDSTACK_ENDPOINT" in done.stderr


def test_the_cs_configuration_file_works_as_well_as_the_data_directory(running, tmp_path):
    env = clean_env(CLOUDSTACK_CONFIG=str(running.data_dir / "cloudstack.ini"), HOME=str(tmp_path))
    assert isinstance(ok_json(motion(running, "jobs", "list", "--json", data_dir=False, env=env)), list)


def test_metrics_of_the_embedded_system_parse_and_count_its_jobs(running):
    motion(running, "migrate", "volume", "web-1-root", "a-gold-2", "--wait")
    text = requests.get(f"{running.base}/metrics", timeout=10).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    jobs = {tuple(sorted(s.labels.items())): s.value for s in families["motion_jobs"].samples}
    assert jobs[(("command", "migrateVolume"), ("status", "succeeded"))] >= 1
    calls = [s for s in families["motion_agent_call_seconds"].samples
             if s.name.endswith("_count") and s.labels["operation"] == "post_command"]
    assert calls and calls[0].value >= 1
    assert requests.get(f"{running.base}/ready", timeout=5).json()["database"] == "ok"
