"""Crash safety end to end: workers and agents killed with SIGKILL mid-copy, a destination pool
going offline (the seed's negative test), Redis restarted with jobs queued. Every job ends, and
every volume's data is complete in exactly the place the database records."""
import hashlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port, wait_until
from tests.helpers import children

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]
BUSY = Path(__file__).with_name("busy_host.yaml")


def pool(api, name):
    return api.listStoragePools(name=name)["storagepool"][0]


def copies(stack, volume):
    return sorted(p for p in stack.agent_root.rglob(volume["path"] + "*") if p.is_file())


def assert_data_where_recorded(stack, volume_id, digest=None):
    api = stack.api
    vol = api.listVolumes(id=volume_id)["volume"][0]
    assert vol["state"] == "Ready"
    recorded = stack.agent_root / pool(api, vol["storage"])["path"].lstrip("/") / vol["path"]
    assert copies(stack, vol) == [recorded]  # complete in exactly one place: the recorded one
    if digest:
        assert hashlib.sha256(recorded.read_bytes()).hexdigest() == digest
    return vol


def start_copy(stack, vol, dest="dst"):
    job = stack.api.migrateVolume(volumeid=vol["id"], storageid=pool(stack.api, dest)["id"], livemigrate=True)
    wait_until(lambda: stack.api.queryAsyncJobResult(jobid=job["jobid"]).get("bytesdone", 0) > 0,
               timeout=60, what="copy under way")
    return job["jobid"]


def end_of(api, jobid):
    return wait_until(lambda: (lambda j: j if j["jobstatus"] != 0 else None)(api.queryAsyncJobResult(jobid=jobid)),
                      timeout=120, interval=0.3, what=f"job {jobid} to end")


def digest_of(stack, vol):
    path = stack.agent_root / pool(stack.api, vol["storage"])["path"].lstrip("/") / vol["path"]
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_destination_pool_going_offline_fails_the_volume_migration_and_keeps_the_source(make_stack):
    stack = make_stack(inventory=BUSY, bandwidth=1)
    vol = stack.api.listVolumes(name="busy-1-root")["volume"][0]
    digest = digest_of(stack, vol)
    jobid = start_copy(stack, vol)
    requests.post(f"{stack.agent_url}/hosts/busy-host/pools/offline", json={"path": "/shared/dst"},
                  timeout=10).raise_for_status()
    job = end_of(stack.api, jobid)
    assert job["jobstatus"] == 2 and "offline" in job["jobresult"]["errortext"]
    assert assert_data_where_recorded(stack, vol["id"], digest)["storage"] == "src"


def test_a_destination_pool_going_offline_during_a_vm_migration_keeps_vm_and_volume_on_the_source(make_stack):
    stack = make_stack(bandwidth=1)
    api = stack.api
    vm = next(v for v in api.listVirtualMachines(fetch_list=True) if v["name"] == "web-1")
    target = next(h for h in api.findHostsForMigration(virtualmachineid=vm["id"])["host"]
                  if h["suitableformigration"] and h["requiresStorageMotion"])
    vol = api.listVolumes(virtualmachineid=vm["id"])["volume"][0]
    digest = digest_of(stack, vol)
    job = api.migrateVirtualMachineWithVolume(virtualmachineid=vm["id"], hostid=target["id"])
    wait_until(lambda: api.queryAsyncJobResult(jobid=job["jobid"]).get("bytesdone", 0) > 0, timeout=60,
               what="copy under way")
    for p in api.listStoragePools(clusterid=target["clusterid"])["storagepool"]:
        requests.post(f"{stack.agent_url}/hosts/{vm['hostname']}/pools/offline", json={"path": p["path"]},
                      timeout=10).raise_for_status()
    result = end_of(api, job["jobid"])
    assert result["jobstatus"] == 2 and "offline" in result["jobresult"]["errortext"]
    after = next(v for v in api.listVirtualMachines(fetch_list=True) if v["name"] == "web-1")
    assert (after["state"], after["hostid"]) == ("Running", vm["hostid"])
    assert assert_data_where_recorded(stack, vol["id"], digest)["storageid"] == vol["storageid"]


def test_a_worker_killed_mid_copy_is_replaced_and_the_job_completes(make_stack):
    stack = make_stack(inventory=BUSY, bandwidth=1)
    vol = stack.api.listVolumes(name="busy-2-root")["volume"][0]
    digest = digest_of(stack, vol)
    jobid = start_copy(stack, vol)
    stack.procs.kill("worker0")
    stack.start_worker("worker1")
    job = end_of(stack.api, jobid)
    assert job["jobstatus"] == 1, job
    assert assert_data_where_recorded(stack, vol["id"], digest)["storage"] == "dst"


def test_an_agent_killed_mid_copy_and_restarted_ends_the_job_with_the_data_in_one_place(make_stack):
    stack = make_stack(inventory=BUSY, bandwidth=1)
    vol = stack.api.listVolumes(name="busy-3-root")["volume"][0]
    digest = digest_of(stack, vol)
    jobid = start_copy(stack, vol)
    stack.procs.kill("agent")
    stack.start_agent()
    job = end_of(stack.api, jobid)
    assert job["jobstatus"] in (1, 2)
    after = assert_data_where_recorded(stack, vol["id"], digest)
    assert after["storage"] == ("dst" if job["jobstatus"] == 1 else "src")


@pytest.fixture
def private_redis(tmp_path):
    """A Redis of this test's own, so that it can be killed and restarted."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is needed for this test"
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(tmp_path)]
    procs = [subprocess.Popen(argv, stdout=subprocess.DEVNULL)]

    def restart():
        procs[-1].kill()
        procs[-1].wait()
        procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL))

    url = f"redis://127.0.0.1:{port}/0"
    import redis as redis_lib
    wait_until(lambda: _pings(redis_lib, url), timeout=20, what="private redis")
    yield url, restart
    procs[-1].kill()
    procs[-1].wait()


def _pings(redis_lib, url):
    try:
        return redis_lib.Redis.from_url(url).ping()
    except redis_lib.RedisError:
        return False


def test_redis_restarted_with_jobs_queued_loses_no_job(make_stack, private_redis):
    url, restart = private_redis
    stack = make_stack(inventory=BUSY, bandwidth=2, broker_url=url)
    api = stack.api
    vols = sorted(api.listVolumes(fetch_list=True), key=lambda v: v["name"])[:4]
    dst = pool(api, "dst")["id"]
    jobids = [api.migrateVolume(volumeid=v["id"], storageid=dst, livemigrate=True)["jobid"] for v in vols]
    restart()  # every message in Redis is gone; the database still has the jobs
    for jobid in jobids:
        assert end_of(api, jobid)["jobstatus"] == 1
    for v in vols:
        assert assert_data_where_recorded(stack, v["id"])["storage"] == "dst"
    # A Celery worker holding a task may exit on the restart (Celery/kombu 5.x); motion worker
    # starts it again: the worker process is still there and runs jobs submitted afterwards.
    stack.procs.check_alive()
    src = pool(api, "src")["id"]
    again = [api.migrateVolume(volumeid=v["id"], storageid=src, livemigrate=True)["jobid"] for v in vols]
    for jobid in again:
        assert end_of(api, jobid)["jobstatus"] == 1
    for v in vols:
        assert assert_data_where_recorded(stack, v["id"])["storage"] == "src"
    stack.procs.check_alive()



def test_a_celery_worker_that_exits_alone_is_started_again_by_motion_worker(make_stack):
    stack = make_stack(inventory=BUSY)
    supervisor = stack.procs.procs["worker0"]
    [celery] = wait_until(lambda: children(supervisor.pid), timeout=60, what="the Celery worker")
    os.kill(celery, signal.SIGKILL)  # the Celery worker alone, as if it had exited by itself
    wait_until(lambda: [p for p in children(supervisor.pid) if p != celery], timeout=120,
               what="the Celery worker started again")
    assert supervisor.poll() is None
    assert "exited by itself" in stack.procs.log("worker0")
    vol = stack.api.listVolumes(name="busy-5-root")["volume"][0]
    job = stack.api.migrateVolume(volumeid=vol["id"], storageid=pool(stack.api, "dst")["id"], livemigrate=True)
    assert end_of(stack.api, job["jobid"])["jobstatus"] == 1
    assert assert_data_where_recorded(stack, vol["id"])["storage"] == "dst"
