"""The end-to-end flow shared by the process and embedded tests, driven by the real ``cs`` client."""
from __future__ import annotations

import hashlib
from pathlib import Path

import requests
from cs import CloudStack, CloudStackApiException


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pick_shared_volume(api: CloudStack) -> tuple[dict, dict, dict]:
    """A running VM on Hyper-V 2012 R2, one of its shared volumes, and a suitable pool for it."""
    hosts = {h["id"]: h for h in api.listHosts(fetch_list=True)}
    for vm in api.listVirtualMachines(state="Running", fetch_list=True):
        if hosts[vm["hostid"]]["hypervisorversion"] != "6.3":
            continue
        for vol in api.listVolumes(virtualmachineid=vm["id"], fetch_list=True):
            if vol["storagetype"] != "shared" or vol["state"] != "Ready":
                continue
            pools = api.findStoragePoolsForMigration(id=vol["id"]).get("storagepool", [])
            suitable = [p for p in pools if p["suitableformigration"]]
            if suitable:
                return vm, vol, suitable[0]
    raise AssertionError("no running VM with a movable shared volume in the inventory")


def volume_file(api: CloudStack, agent_root: Path, volume: dict) -> Path:
    [pool] = api.listStoragePools(id=volume["storageid"])["storagepool"]
    return agent_root / pool["path"].lstrip("/") / volume["path"]


def migrate_and_verify(api: CloudStack, agent_root: Path) -> None:
    """List, migrate, poll to completion; the row and the file are on the destination."""
    vm, vol, dest = pick_shared_volume(api)
    src_file = volume_file(api, agent_root, vol)
    digest = sha256(src_file)
    job = api.migrateVolume(volumeid=vol["id"], storageid=dest["id"], livemigrate=True)
    result = api._jobresult(job["jobid"])  # raises on failure
    assert result["volume"]["storageid"] == dest["id"]
    [after] = api.listVolumes(id=vol["id"])["volume"]
    assert (after["state"], after["storageid"], after["storage"]) == ("Ready", dest["id"], dest["name"])
    final = api.queryAsyncJobResult(jobid=job["jobid"])
    assert (final["jobstatus"], final["jobresultcode"]) == (1, 0)
    dest_file = volume_file(api, agent_root, after)
    assert dest_file.exists() and sha256(dest_file) == digest
    assert not src_file.exists()


def failing_migration_rolls_back(api: CloudStack, agent_url: str, agent_root: Path) -> None:
    """The agent reports an error: the volume stays Ready on its source pool, the job fails."""
    vm, vol, dest = pick_shared_volume(api)
    src_file = volume_file(api, agent_root, vol)
    digest = sha256(src_file)
    fault = {"type": "fail", "command": "MigrateVolumeCommand", "volumeId": vol["id"],
             "message": "simulated WMI failure: Hyper-V job error 32768"}
    requests.post(f"{agent_url}/hosts/{vm['hostname']}/faults", json=fault, timeout=10).raise_for_status()
    job = api.migrateVolume(volumeid=vol["id"], storageid=dest["id"], livemigrate=True)
    try:
        api._jobresult(job["jobid"])
        raise AssertionError("the job should have failed")
    except CloudStackApiException as exc:
        assert "simulated WMI failure" in exc.error["errortext"]
    final = api.queryAsyncJobResult(jobid=job["jobid"])
    assert final["jobstatus"] == 2 and final["jobresult"]["errorcode"] == 530
    [after] = api.listVolumes(id=vol["id"])["volume"]
    assert (after["state"], after["storageid"]) == ("Ready", vol["storageid"])
    assert sha256(src_file) == digest
    assert not volume_file(api, agent_root, {**after, "storageid": dest["id"]}).exists()
