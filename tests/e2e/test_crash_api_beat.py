"""SIGKILL of the API (gunicorn master and workers) and of beat - and once of the worker too - in
the middle of migrations needs no manual step: once they are started again, every job ends, no
volume or VM stays Migrating, and each volume's data is complete, by the agent's checksum,
exactly where the database says."""
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import wait_until
from tests.e2e.conftest import up

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]
BUSY = Path(__file__).with_name("busy_host.yaml")
HOST = "busy-host"


def start_api(stack) -> None:
    stack.procs.start("api", [sys.executable, "-m", "gunicorn", "-w", "2", "-b",
                              f"127.0.0.1:{stack.api_port}", "api:create_app()"], stack.env)
    wait_until(lambda: up(f"http://127.0.0.1:{stack.api_port}/"), what="api", timeout=60)


def start_beat(stack) -> None:
    stack.procs.start("beat", [sys.executable, "-m", "motion.cli", "beat", "--interval", "1"], stack.env)


def truth(stack, volume_id: str) -> dict:
    """The agent's answer about a volume, with a checksum per location."""
    return requests.get(f"{stack.agent_url}/hosts/{HOST}/volumes/{volume_id}?checksum=1", timeout=30).json()


def pool_uuid(api, name: str) -> str:
    return api.listStoragePools(name=name)["storagepool"][0]["id"]


def end_of(api, jobid):
    return wait_until(lambda: (lambda j: j if j["jobstatus"] != 0 else None)(api.queryAsyncJobResult(jobid=jobid)),
                      timeout=180, interval=0.5, what=f"job {jobid} to end")


def kill_api_and_beat(stack) -> None:
    stack.procs.kill("api")   # SIGKILL to the session: the gunicorn master and its workers
    stack.procs.kill("beat")


def test_sigkill_of_api_and_beat_mid_migration_needs_no_manual_step(make_stack):
    stack = make_stack(inventory=BUSY, bandwidth=2)
    api = stack.api
    vols = sorted(api.listVolumes(fetch_list=True), key=lambda v: v["name"])
    digests = {}
    for v in vols:
        [location] = truth(stack, v["id"])["locations"]
        digests[v["id"]] = location["sha256"]
    dst = pool_uuid(api, "dst")

    # Round 1: migrations under way (two copying, the rest queued for a slot), then SIGKILL of
    # the API, beat and the worker; all three started again.
    first = [api.migrateVolume(volumeid=v["id"], storageid=dst, livemigrate=True)["jobid"] for v in vols[:6]]
    wait_until(lambda: any(api.queryAsyncJobResult(jobid=j).get("bytesdone", 0) > 0 for j in first),
               timeout=60, what="a copy under way")
    kill_api_and_beat(stack)
    stack.procs.kill("worker0")  # every orchestrator process at once: the worker too
    stack.start_worker("worker0")
    start_beat(stack)
    start_api(stack)

    # Round 2: more migrations, and SIGKILL again right after they were accepted (queued, maybe
    # not even published yet); beat stays down a while, then both come back.
    rest = [api.migrateVolume(volumeid=v["id"], storageid=dst, livemigrate=True)["jobid"] for v in vols[6:]]
    kill_api_and_beat(stack)
    start_api(stack)
    start_beat(stack)

    jobs = [end_of(api, jobid) for jobid in first + rest]
    assert [j["jobstatus"] for j in jobs] == [1] * len(jobs), [j.get("jobresult") for j in jobs]
    assert not [v["name"] for v in api.listVolumes(fetch_list=True) if v["state"] != "Ready"]
    assert not [vm["name"] for vm in api.listVirtualMachines(fetch_list=True) if vm["state"] == "Migrating"]
    pools = {p["id"]: p for p in api.listStoragePools(fetch_list=True)}
    for v in api.listVolumes(fetch_list=True):
        # the agent finds the complete data in exactly one pool: the recorded one, unchanged
        answer = truth(stack, v["id"])
        assert [(loc["pool"], loc["sha256"]) for loc in answer["locations"]] == \
            [(v["storageid"], digests[v["id"]])], (v["name"], answer)
        assert pools[v["storageid"]]["name"] == "dst"
        recorded = stack.agent_root / pools[v["storageid"]]["path"].lstrip("/") / v["path"]
        assert recorded.is_file()
    assert not list(stack.agent_root.rglob("*.partial"))
    stack.procs.check_alive()
