"""The API on PostgreSQL through Flask's test client: envelopes, signing, roles and bad input.

Every refused request must answer the right CloudStack error code with a text naming the
problem, and change nothing.
"""
import pytest
from sqlalchemy import select

from api.signing import sign_pairs
from orchestrator import models
from tests.helpers import count, volume_row

pytestmark = pytest.mark.postgres


def uuid_of(db, model, name):
    with db.uow() as uow:
        return uow.session.scalar(select(model.uuid).where(model.name == name))


def assert_unchanged(env):
    assert count(env["db"], models.AsyncJob) == 0
    assert volume_row(env["db"], "vm1-root").state == "Ready"
    assert env["enqueued"] == []


def test_list_volumes_answers_in_a_cloudstack_envelope_with_admin_fields(env):
    status, body = env["admin"].call("listVolumes", name="vm1-root")
    assert status == 200
    [vol] = body["listvolumesresponse"]["volume"]
    assert body["listvolumesresponse"]["count"] == 1
    assert vol["storage"] == "c1-gold" and vol["storagetype"] == "shared" and vol["vmstate"] == "Running"
    assert vol["path"].endswith(".vhdx") and vol["diskofferingid"]


def test_lists_page_with_page_and_pagesize_and_count_the_total(env):
    status, body = env["admin"].call("listStoragePools", page=2, pagesize=3)
    pools = body["liststoragepoolsresponse"]
    assert status == 200 and pools["count"] == 11 and len(pools["storagepool"]) == 3
    local = [p for p in env["admin"].call("listStoragePools", name="h1-local")[1]
             ["liststoragepoolsresponse"]["storagepool"]]
    assert local[0]["hostname"] == "h1" and local[0]["scope"] == "HOST"


def test_an_empty_list_is_an_empty_object(env):
    status, body = env["admin"].call("listVolumes", name="no-such-volume")
    assert (status, body) == (200, {"listvolumesresponse": {}})


def test_hypervisor_capabilities_report_storage_motion_per_version(env):
    caps = env["admin"].call("listHypervisorCapabilities")[1]["listhypervisorcapabilitiesresponse"]
    by_version = {c["hypervisorversion"]: c["storagemotionenabled"] for c in caps["hypervisorCapabilities"]}
    assert by_version == {"6.2": False, "6.3": True}


def test_migrate_volume_returns_a_job_id_and_the_job_is_pending(env):
    vol, pool = uuid_of(env["db"], models.Volume, "vm1-root"), uuid_of(env["db"], models.StoragePool, "c1-gold-2")
    status, body = env["admin"].call("migrateVolume", volumeid=vol, storageid=pool, livemigrate="true",
                                     method="post")
    assert status == 200
    jobid = body["migratevolumeresponse"]["jobid"]
    job = env["admin"].call("queryAsyncJobResult", jobid=jobid)[1]["queryasyncjobresultresponse"]
    assert job["jobstatus"] == 0 and job["jobid"] == jobid and job["cmd"].endswith("MigrateVolumeCmdByAdmin")
    assert len(env["enqueued"]) == 1
    listed = env["admin"].call("listAsyncJobs")[1]["listasyncjobsresponse"]
    assert listed["count"] == 1 and listed["asyncjobs"][0]["jobid"] == jobid


@pytest.mark.parametrize("params,needle", [
    ({}, "missing parameter volumeid"),
    ({"volumeid": "VOL"}, "missing parameter storageid"),
    ({"volumeid": "not-a-uuid", "storageid": "POOL"}, "Invalid parameter volumeid value=not-a-uuid"),
    ({"volumeid": "00000000-0000-0000-0000-000000000000", "storageid": "POOL"},
     "Invalid parameter volumeid"),
    ({"volumeid": "VOL", "storageid": "12345"}, "Invalid parameter storageid value=12345"),
    ({"volumeid": "VOL", "storageid": "POOL"}, "livemigrate"),
])
def test_bad_migrate_volume_parameters_get_431_naming_the_parameter(env, params, needle):
    vol, pool = uuid_of(env["db"], models.Volume, "vm1-root"), uuid_of(env["db"], models.StoragePool, "c1-gold-2")
    params = {k: v.replace("VOL", vol).replace("POOL", pool) for k, v in params.items()}
    status, body = env["admin"].call("migrateVolume", **params)
    assert status == 431
    error = body["migratevolumeresponse"]
    assert error["errorcode"] == 431 and error["cserrorcode"] == 4350 and needle in error["errortext"]
    assert_unchanged(env)


def test_unsigned_and_wrongly_signed_requests_get_401(env):
    vol, pool = uuid_of(env["db"], models.Volume, "vm1-root"), uuid_of(env["db"], models.StoragePool, "c1-gold-2")
    for kwargs in ({"sign": False}, {"secret": "not-the-secret"}):
        status, body = env["admin"].call("migrateVolume", volumeid=vol, storageid=pool, livemigrate="true", **kwargs)
        assert status == 401 and body["migratevolumeresponse"]["errorcode"] == 401
    status, _ = env["anon"].call("listZones")
    assert status == 401
    assert_unchanged(env)


def test_an_expired_request_gets_401(env):
    api = env["admin"]
    pairs = [("command", "listZones"), ("response", "json"), ("apiKey", api.key["apikey"]),
             ("signatureVersion", "3"), ("expires", "2020-01-01T00:00:00+0000")]
    pairs.append(("signature", sign_pairs(pairs, api.key["secretkey"])))
    assert api.client.get("/client/api", query_string=pairs).status_code == 401


def test_a_non_admin_key_cannot_migrate_and_changes_nothing(env):
    vol, pool = uuid_of(env["db"], models.Volume, "vm1-root"), uuid_of(env["db"], models.StoragePool, "c1-gold-2")
    status, body = env["user"].call("migrateVolume", volumeid=vol, storageid=pool, livemigrate="true")
    assert status == 432 and "not available for user" in body["errorresponse"]["errortext"]
    assert_unchanged(env)


def test_a_user_sees_only_its_own_volumes(env):
    status, body = env["user"].call("listVolumes")
    assert (status, body) == (200, {"listvolumesresponse": {}})


def test_an_unknown_command_gets_432_and_a_missing_command_431(env):
    status, body = env["admin"].call("dropAllTables")
    assert status == 432 and "Unknown API command" in body["errorresponse"]["errortext"]
    response = env["admin"].client.get("/client/api")
    assert response.status_code == 431


def test_paging_parameters_must_come_together_and_be_numbers(env):
    assert env["admin"].call("listVolumes", pagesize=5)[0] == 431
    assert env["admin"].call("listVolumes", page="x", pagesize=5)[0] == 431
    assert env["admin"].call("listVolumes", page=1, pagesize=0)[0] == 431


def test_find_storage_pools_marks_tag_mismatches_unsuitable_with_reasons(env):
    vol = uuid_of(env["db"], models.Volume, "vm1-root")
    body = env["admin"].call("findStoragePoolsForMigration", id=vol)[1]["findstoragepoolsformigrationresponse"]
    by_name = {p["name"]: p for p in body["storagepool"]}
    assert set(by_name) == {"c1-gold-2", "c1-silver", "c1-tiny"}  # same cluster, shared, not its own
    assert by_name["c1-gold-2"]["suitableformigration"] is True
    assert by_name["c1-silver"]["suitableformigration"] is False
    assert any("gold" in r for r in by_name["c1-silver"]["reasons"])
    assert body["storagepool"][0]["name"] == "c1-gold-2"  # suitable first


def test_find_hosts_lists_hosts_within_and_across_clusters_with_storage_motion_flags(env):
    vm = uuid_of(env["db"], models.VirtualMachine, "vm2")
    status, body = env["admin"].call("findHostsForMigration", virtualmachineid=vm)
    hosts = {h["name"]: h for h in body["findhostsformigrationresponse"]["host"]}
    assert status == 200 and set(hosts) == {"h2", "h3", "h-old"}
    assert hosts["h2"]["requiresStorageMotion"] is False and hosts["h2"]["suitableformigration"] is True
    assert hosts["h3"]["requiresStorageMotion"] is True and hosts["h3"]["suitableformigration"] is True
    assert hosts["h2"]["hasenoughcapacity"] is True
    assert hosts["h-old"]["suitableformigration"] is False and hosts["h-old"]["reasons"]
    assert body["findhostsformigrationresponse"]["host"][0]["name"] == "h2"  # no storage motion first


def test_find_hosts_marks_hosts_without_the_offering_host_tags_unsuitable(env):
    vm = uuid_of(env["db"], models.VirtualMachine, "vm3")
    hosts = {h["name"]: h for h in env["admin"].call("findHostsForMigration", virtualmachineid=vm)[1]
             ["findhostsformigrationresponse"]["host"]}
    assert hosts["h2"]["suitableformigration"] is True
    assert hosts["h1"]["suitableformigration"] is False
    assert any("host tags do not match" in r for r in hosts["h1"]["reasons"])


@pytest.mark.parametrize("extra,code,needle", [
    ([("migrateto[0].volume", "VOL")], 431, "missing parameter migrateto[0].pool"),
    ([("migrateto[0].volume", "VOL"), ("migrateto[0].pool", "not-a-uuid")], 431, "migrateto[0].pool"),
    ([("migrateto[0].volume", "OTHER"), ("migrateto[0].pool", "POOL")], 431, "does not belong"),
    ([("migrateto[0].volume", "VOL"), ("migrateto[0].pool", "POOL"),
      ("migrateto[1].volume", "VOL"), ("migrateto[1].pool", "POOL")], 431, "more than once"),
    ([("migrateto[0].volume", "VOL"), ("migrateto[0].pool", "LOCAL")], 431, "cannot move to local"),
    ([("migrateto[x].volume", "VOL")], 430, "parameter[index].field"),
    ([("migrateto[0]volume", "VOL")], 430, "parameter[index].field"),
])
def test_a_bad_migrateto_map_is_refused_naming_the_entry(env, extra, code, needle):
    db = env["db"]
    subs = {"VOL": uuid_of(db, models.Volume, "vm1-root"), "OTHER": uuid_of(db, models.Volume, "vm2-root"),
            "POOL": uuid_of(db, models.StoragePool, "c2-gold"), "LOCAL": uuid_of(db, models.StoragePool, "h3-local")}
    extra = [(k, subs.get(v, v)) for k, v in extra]
    status, body = env["admin"].call("migrateVirtualMachineWithVolume", extra=extra,
                                     virtualmachineid=uuid_of(db, models.VirtualMachine, "vm1"),
                                     hostid=uuid_of(db, models.Host, "h3"))
    [error] = body.values()
    assert status == code and error["errorcode"] == code and needle in error["errortext"]
    assert count(db, models.AsyncJob) == 0
    assert env["enqueued"] == []


def test_migrate_vm_with_volume_answers_a_job_id(env):
    db = env["db"]
    status, body = env["admin"].call("migrateVirtualMachineWithVolume",
                                     virtualmachineid=uuid_of(db, models.VirtualMachine, "vm1"),
                                     hostid=uuid_of(db, models.Host, "h3"))
    assert status == 200 and body["migratevirtualmachinewithvolumeresponse"]["jobid"]
    job = env["admin"].call("queryAsyncJobResult", jobid=body["migratevirtualmachinewithvolumeresponse"]["jobid"])
    assert job[1]["queryasyncjobresultresponse"]["cmd"].endswith("MigrateVirtualMachineWithVolumeCmd")


@pytest.mark.parametrize("name,value", [("reconcile.truth.interval", "60"), ("reconcile.truth.interval", "0"),
                                        ("reconcile.truth.batch", "50"), ("agent.unreachable.giveup", "120"),
                                        ("job.expire.minutes", "0"), ("job.expire.minutes", "60"),
                                        ("event.purge.delay", "0"), ("event.purge.delay", "30")])
def test_update_configuration_changes_the_reconciler_giveup_and_expiry_settings(env, name, value):
    status, body = env["admin"].call("updateConfiguration", name=name, value=value)
    assert status == 200 and body["updateconfigurationresponse"]["configuration"]["value"] == value
    status, body = env["admin"].call("listConfigurations", name=name)
    assert status == 200 and body["listconfigurationsresponse"]["configuration"][0]["value"] == value


@pytest.mark.parametrize("name,value", [("reconcile.truth.interval", "-1"), ("reconcile.truth.batch", "0"),
                                        ("reconcile.truth.batch", "many"), ("agent.unreachable.giveup", "1.5h"),
                                        ("job.expire.minutes", "4"), ("job.expire.minutes", "-1"),
                                        ("event.purge.delay", "-1"), ("event.purge.delay", "1.5")])
def test_update_configuration_refuses_a_bad_value_with_431_and_keeps_the_old_one(env, name, value):
    _, before = env["admin"].call("listConfigurations", name=name)
    status, body = env["admin"].call("updateConfiguration", name=name, value=value)
    assert status == 431 and name in body["updateconfigurationresponse"]["errortext"]
    _, after = env["admin"].call("listConfigurations", name=name)
    assert after == before
