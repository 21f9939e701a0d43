"""The seed's Scenario 2 end to end through the cs client on the production processes:
live-migrating VMs with their volumes (migrateVirtualMachineWithVolume) and without
(migrateVirtualMachine), each test guideline of the seed its own test."""
import hashlib

import pytest
import requests
from cs import CloudStackApiException

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]


def by_name(items, name):
    return next(i for i in items if i["name"] == name)


def vm_named(api, name):
    return by_name(api.listVirtualMachines(fetch_list=True), name)


def volumes_of(api, vm_id):
    return sorted(api.listVolumes(virtualmachineid=vm_id, fetch_list=True), key=lambda v: v["name"])


def pools(api):
    return {p["id"]: p for p in api.listStoragePools(fetch_list=True)}


def file_of(stack, pool, volume):
    return stack.agent_root / pool["path"].lstrip("/") / volume["path"]


def digests(stack, vm_id):
    ps = pools(stack.api)
    return {v["id"]: hashlib.sha256(file_of(stack, ps[v["storageid"]], v).read_bytes()).hexdigest()
            for v in volumes_of(stack.api, vm_id)}


def copies(stack, volume):
    """Every pool directory holding a file of this volume (partial copies included)."""
    return sorted(p for p in stack.agent_root.rglob(volume["path"] + "*") if p.is_file())


def target_host(api, vm, other_cluster=True):
    hosts = api.findHostsForMigration(virtualmachineid=vm["id"])["host"]
    src = by_name(api.listHosts(fetch_list=True), vm["hostname"])
    for h in hosts:
        if h["suitableformigration"] and (h["clusterid"] != src["clusterid"]) == other_cluster:
            return h
    raise AssertionError(f"no suitable host for {vm['name']}: {hosts}")


def assert_vm_moved_with_intact_volumes(stack, vm, before):
    api = stack.api
    target = target_host(api, vm)
    assert target["requiresStorageMotion"] is True
    job = api.migrateVirtualMachineWithVolume(virtualmachineid=vm["id"], hostid=target["id"])
    result = api._jobresult(job["jobid"])
    assert result["virtualmachine"]["hostid"] == target["id"]
    after_vm = vm_named(api, vm["name"])
    assert (after_vm["state"], after_vm["hostid"]) == ("Running", target["id"])
    ps = pools(api)
    for vol in volumes_of(api, vm["id"]):
        pool = ps[vol["storageid"]]
        if vol["storagetype"] == "local":  # local offering: on the destination's local pool
            assert pool["scope"] == "HOST" and pool["hostid"] == target["id"]
        else:  # shared offering: on a shared pool the destination reaches
            assert pool["scope"] == "ZONE" or pool["clusterid"] == target["clusterid"]
        assert vol["state"] == "Ready"
        assert copies(stack, vol) == [file_of(stack, pool, vol)]
    assert digests(stack, vm["id"]) == before


def test_a_vm_with_only_a_root_volume_moves_across_clusters_without_a_map(stack):
    vm = vm_named(stack.api, "web-1")
    assert_vm_moved_with_intact_volumes(stack, vm, digests(stack, vm["id"]))


def test_a_vm_with_root_and_data_on_mixed_local_and_shared_storage_moves_without_a_map(stack):
    vm = vm_named(stack.api, "app-1")
    kinds = {v["storagetype"] for v in volumes_of(stack.api, vm["id"])}
    assert kinds == {"local", "shared"}
    assert_vm_moved_with_intact_volumes(stack, vm, digests(stack, vm["id"]))


def test_with_a_map_every_volume_lands_on_the_pool_named(stack):
    api = stack.api
    vm = vm_named(api, "batch-1")  # cluster B, shared: ROOT any, DATA gold
    target = target_host(api, vm)
    ps = pools(api)
    reachable = [p for p in ps.values() if p["scope"] == "ZONE" or p.get("clusterid") == target["clusterid"]]
    wanted = {}
    for vol in volumes_of(api, vm["id"]):
        offering = api.listDiskOfferings(id=vol["diskofferingid"])["diskoffering"][0]
        tags = {t for t in offering.get("tags", "").split(",") if t}
        fits = [p for p in reachable if p["scope"] != "HOST" and tags <= set(p["tags"].split(","))]
        wanted[vol["id"]] = sorted(fits, key=lambda p: p["name"])[-1]["id"]
    mapping = [{"volume": v, "pool": p} for v, p in wanted.items()]
    job = api.migrateVirtualMachineWithVolume(virtualmachineid=vm["id"], hostid=target["id"], migrateto=mapping)
    api._jobresult(job["jobid"])
    assert {v["id"]: v["storageid"] for v in volumes_of(api, vm["id"])} == wanted


@pytest.mark.parametrize("vm_name,volume_name,kind", [("web-1", "web-1-root", "HOST"),
                                                      ("app-1", "app-1-root", "CLUSTER")])
def test_an_invalid_map_crossing_local_and_shared_fails_and_moves_nothing(stack, vm_name, volume_name, kind):
    api = stack.api
    vm = vm_named(api, vm_name)
    target = target_host(api, vm)
    vol = by_name(volumes_of(api, vm["id"]), volume_name)
    pool = next(p for p in pools(api).values() if p["scope"] == kind
                and (p.get("hostid") == target["id"] or p.get("clusterid") == target["clusterid"]))
    before = {v["id"]: v["storageid"] for v in volumes_of(api, vm["id"])}
    with pytest.raises(CloudStackApiException) as err:
        api.migrateVirtualMachineWithVolume(virtualmachineid=vm["id"], hostid=target["id"],
                                            migrateto=[{"volume": vol["id"], "pool": pool["id"]}])
    assert err.value.error["errorcode"] == 431 and "cannot move to" in err.value.error["errortext"]
    after = vm_named(api, vm_name)
    assert (after["state"], after["hostid"]) == ("Running", vm["hostid"])
    assert {v["id"]: v["storageid"] for v in volumes_of(api, vm["id"])} == before
    assert api.listAsyncJobs().get("count", 0) == 0


def test_an_agent_failure_on_the_second_volume_puts_everything_back_on_the_source(stack):
    api = stack.api
    vm = vm_named(api, "db-1")  # ROOT + 2 DATA
    target = target_host(api, vm)
    before = {v["id"]: v["storageid"] for v in volumes_of(api, vm["id"])}
    sums = digests(stack, vm["id"])
    fault = {"type": "fail", "command": "MigrateWithStorageCommand", "volumeIndex": 1,
             "message": "simulated failure of the second volume"}
    requests.post(f"{stack.agent_url}/hosts/{vm['hostname']}/faults", json=fault, timeout=10).raise_for_status()
    job = api.migrateVirtualMachineWithVolume(virtualmachineid=vm["id"], hostid=target["id"])
    with pytest.raises(CloudStackApiException) as err:
        api._jobresult(job["jobid"])
    assert "second volume" in err.value.error["errortext"]
    after = vm_named(api, "db-1")
    assert (after["state"], after["hostid"]) == ("Running", vm["hostid"])
    vols = volumes_of(api, vm["id"])
    assert {v["id"]: v["storageid"] for v in vols} == before
    assert all(v["state"] == "Ready" for v in vols)
    ps = pools(api)
    for vol in vols:  # nothing left on any destination pool
        assert copies(stack, vol) == [file_of(stack, ps[vol["storageid"]], vol)]
    assert digests(stack, vm["id"]) == sums


def test_within_the_cluster_on_shared_storage_no_storage_motion_is_needed(stack):
    api = stack.api
    vm = vm_named(api, "batch-1")  # shared only, cluster B
    target = target_host(api, vm, other_cluster=False)
    assert target["requiresStorageMotion"] is False
    before = {v["id"]: v["storageid"] for v in volumes_of(api, vm["id"])}
    job = api.migrateVirtualMachine(virtualmachineid=vm["id"], hostid=target["id"])
    api._jobresult(job["jobid"])
    after = vm_named(api, "batch-1")
    assert (after["state"], after["hostid"]) == ("Running", target["id"])
    assert {v["id"]: v["storageid"] for v in volumes_of(api, vm["id"])} == before


def test_host_only_migration_is_refused_when_storage_must_move(stack):
    api = stack.api
    vm = vm_named(api, "app-1")  # has a local volume
    target = target_host(api, vm)
    with pytest.raises(CloudStackApiException) as err:
        api.migrateVirtualMachine(virtualmachineid=vm["id"], hostid=target["id"])
    assert "use migrateVirtualMachineWithVolume" in err.value.error["errortext"]
