"""Admission, deadlines, progress and cancel end to end: ten migrations on one host through two
worker processes and a throttled agent, driven with the cs client."""
import time
from pathlib import Path

import pytest
import requests
from cs import CloudStackApiException

from tests.conftest import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]
BUSY = Path(__file__).with_name("busy_host.yaml")


def pool_id(api, name):
    return api.listStoragePools(name=name)["storagepool"][0]["id"]


def volumes(api):
    return sorted(api.listVolumes(fetch_list=True), key=lambda v: v["name"])


def submit_all(api, vols, dest):
    return [api.migrateVolume(volumeid=v["id"], storageid=dest, livemigrate=True)["jobid"] for v in vols]


def test_ten_migrations_on_one_host_keep_to_its_limit_queue_in_order_and_never_time_out(make_stack):
    stack = make_stack(inventory=BUSY, workers=2, bandwidth=4)  # 4 MiB at 4 MiB/s: 1 s per copy
    api = stack.api
    api.updateConfiguration(name="wait", value="2")  # deadline 4 s; the queue takes longer than that
    jobids = submit_all(api, volumes(api), pool_id(api, "dst"))
    positions = {j: [] for j in jobids}
    progress = {j: [] for j in jobids}
    etas = set()
    pending = set(jobids)
    end = time.monotonic() + 120
    while pending and time.monotonic() < end:
        for j in list(pending):
            job = api.queryAsyncJobResult(jobid=j)
            if job["jobstatus"] != 0:
                pending.discard(j)
                assert job["jobstatus"] == 1, job
                continue
            if job.get("phase") == "queued":
                positions[j].append(job["queueposition"])
            else:
                progress[j].append(job["bytesdone"])
                if job.get("eta") is not None and job["bytesdone"] < job["bytestotal"]:
                    etas.add(j)
        time.sleep(0.1)
    assert not pending, "every job ends"
    status = requests.get(f"{stack.agent_url}/hosts/busy-host", timeout=10).json()
    assert status["peakStorageMigrations"] == 2  # the orchestrator kept to the limit on its own
    last = jobids[-1]
    assert positions[last] and positions[last][0] > 1 and positions[last] == sorted(positions[last], reverse=True)
    for seen in progress.values():
        assert seen == sorted(seen)  # bytes done only rise
    assert etas, "an ETA is shown while a copy runs"
    assert all(v["storage"] == "dst" and v["state"] == "Ready" for v in volumes(api))


def test_a_hanging_agent_fails_the_job_after_wait_times_two_naming_the_timeout(make_stack):
    stack = make_stack(inventory=BUSY)
    api = stack.api
    api.updateConfiguration(name="wait", value="1")
    vol = volumes(api)[0]
    requests.post(f"{stack.agent_url}/hosts/busy-host/faults", timeout=10,
                  json={"type": "hang", "command": "MigrateVolumeCommand"}).raise_for_status()
    job = api.migrateVolume(volumeid=vol["id"], storageid=pool_id(api, "dst"), livemigrate=True)
    with pytest.raises(CloudStackApiException) as err:
        api._jobresult(job["jobid"])
    assert "wait*2 = 2 s" in err.value.error["errortext"]
    after = api.listVolumes(id=vol["id"])["volume"][0]
    assert (after["storage"], after["state"]) == ("src", "Ready")


def test_cancel_while_copying_removes_the_partial_copy_and_keeps_the_source(make_stack):
    stack = make_stack(inventory=BUSY, bandwidth=0.5)  # 8 s per copy
    api = stack.api
    vol = volumes(api)[0]
    job = api.migrateVolume(volumeid=vol["id"], storageid=pool_id(api, "dst"), livemigrate=True)
    wait_until(lambda: api.queryAsyncJobResult(jobid=job["jobid"]).get("bytesdone", 0) > 0, timeout=60,
               what="copy under way")
    api.cancelAsyncJob(jobid=job["jobid"])
    with pytest.raises(CloudStackApiException) as err:
        api._jobresult(job["jobid"])
    assert "cancelled by" in err.value.error["errortext"]
    after = api.listVolumes(id=vol["id"])["volume"][0]
    assert (after["storage"], after["state"]) == ("src", "Ready")
    leftovers = [p for p in stack.agent_root.rglob(vol["path"] + "*") if p.is_file()]
    assert [p.parent.name for p in leftovers] == ["src"]


def test_cancel_while_queued_ends_at_once_and_after_completion_is_refused(make_stack):
    stack = make_stack(inventory=BUSY, bandwidth=0.25)  # 16 s per copy: time to see the queue
    api = stack.api
    vols = volumes(api)[:3]
    jobids = submit_all(api, vols, pool_id(api, "dst"))
    wait_until(lambda: api.queryAsyncJobResult(jobid=jobids[2]).get("queueposition") == 1, timeout=60,
               what="third job queued behind two running")
    cancelled = api.cancelAsyncJob(jobid=jobids[2])
    assert cancelled["jobstatus"] == 2 and "cancelled by" in cancelled["jobresult"]["errortext"]
    assert api.listVolumes(id=vols[2]["id"])["volume"][0]["state"] == "Ready"
    for j in jobids[:2]:
        api.cancelAsyncJob(jobid=j)
        with pytest.raises(CloudStackApiException):
            api._jobresult(j)
    with pytest.raises(CloudStackApiException) as err:
        api.cancelAsyncJob(jobid=jobids[0])
    assert err.value.error["errorcode"] == 431 and "already finished" in err.value.error["errortext"]
    events = api.listEvents(type="VOLUME.MIGRATE", level="ERROR")["event"]
    assert len(events) == 3
