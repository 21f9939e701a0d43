"""Loading and dumping inventories on a real PostgreSQL, migrated by Alembic.

The module shares one database, made by the suite's ``create_pg_database`` and dropped at the end;
each test starts from emptied tables. As everywhere in the suite, an unreachable PostgreSQL skips
these tests with the reason, or fails them when MOTION_REQUIRE_SERVICES=1 (see tests/conftest.py).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

import migrations
from orchestrator import inventory, inventory_load
from orchestrator.db import Database
from orchestrator.errors import InventoryError
from orchestrator.models import (Account, Cluster, Host, StoragePool, VirtualMachine, Volume, Zone)
from tests.conftest import create_pg_database, drop_pg_database

pytestmark = pytest.mark.postgres

DEMO = Path(__file__).resolve().parents[2] / "motion" / "demo-inventory.yaml"
TABLES = ("volumes", "virtual_machines", "storage_pools", "hosts", "clusters", "pods", "zones",
          "disk_offerings", "service_offerings", "job_resources", "events", "async_jobs", "users",
          "accounts")


@pytest.fixture(scope="module")
def module_pg_url():
    """A fresh database migrated to head, shared by this module's tests and dropped at the end."""
    url = create_pg_database()  # skips, or fails under MOTION_REQUIRE_SERVICES=1, without a server
    try:
        migrations.upgrade(url)
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture
def db(module_pg_url):
    """The module's database, emptied of everything an inventory or a job writes."""
    database = Database(module_pg_url)
    with database.engine.begin() as connection:
        connection.exec_driver_sql(f"TRUNCATE {', '.join(TABLES)} CASCADE")
    yield database
    database.dispose()


def load_demo(db: Database) -> dict:
    return inventory.load_file(db, DEMO)


def count(db: Database, model) -> int:
    with db.uow() as uow:
        return uow.session.scalar(select(func.count()).select_from(model))


def by_name(session, model, name):
    return session.scalars(select(model).where(model.name == name)).one()


def test_the_demo_inventory_loads_with_the_right_counts(db):
    counts = load_demo(db)
    assert counts == dict(zones=1, pods=1, clusters=3, hosts=6, pools=14, disk_offerings=5,
                          service_offerings=4, accounts=4, vms=8, volumes=14)
    assert count(db, Host) == 6 and count(db, StoragePool) == 14 and count(db, Volume) == 14


def test_local_pools_belong_to_their_host_and_shared_pools_to_their_cluster_or_zone(db):
    load_demo(db)
    with db.uow() as uow:
        s = uow.session
        host = by_name(s, Host, "hv-a1")
        local = by_name(s, StoragePool, "hv-a1-local")
        assert (local.scope, local.is_local, local.pool_type, local.host_id, local.cluster_id,
                local.path, local.tags) == \
            ("HOST", True, "Filesystem", host.id, host.cluster_id, "/local/hv-a1/hv-a1-local", "ssd")
        gold = by_name(s, StoragePool, "a-gold-1")
        cluster = by_name(s, Cluster, "r2-cluster-a")
        assert (gold.scope, gold.is_local, gold.pool_type, gold.cluster_id, gold.pod_id,
                gold.host_id, gold.path, gold.state) == \
            ("CLUSTER", False, "SMB", cluster.id, cluster.pod_id, None, "/shared/a-gold-1", "Up")
        bulk = by_name(s, StoragePool, "zone-bulk")
        assert (bulk.scope, bulk.pool_type, bulk.cluster_id, bulk.pod_id, bulk.host_id,
                bulk.zone_id) == ("ZONE", "SMB", None, None, None, by_name(s, Zone, "demo-zone").id)
        assert bulk.capacity_bytes == 4 << 40
        old = by_name(s, Host, "hv-old1")
        assert (old.hypervisor, old.hypervisor_version, old.status, old.resource_state,
                old.ip_address, old.agent_url) == ("Hyperv", "6.2", "Up", "Enabled", "127.0.0.1", None)
        assert (host.host_tags, host.cpu_number, host.cpu_speed, host.memory) == \
            ("fast", 16, 2400, 64 << 30)


def test_volumes_get_a_path_from_their_uuid_the_ready_state_and_device_ids(db):
    load_demo(db)
    with db.uow() as uow:
        volumes = uow.session.scalars(select(Volume)).all()
        assert all(v.path == f"{v.uuid}.vhdx" and v.state == "Ready" for v in volumes)
        db1 = {v.name: v for v in volumes if v.vm.name == "db-1"}
        assert {name: (v.volume_type, v.device_id) for name, v in db1.items()} == {
            "db-1-root": ("ROOT", 0), "db-1-data": ("DATADISK", 1), "db-1-archive": ("DATADISK", 2)}
        assert db1["db-1-data"].pool.name == "a-gold-2"
        assert db1["db-1-data"].disk_offering.name == "shared-gold"
        assert db1["db-1-data"].size == 4 << 20
        assert db1["db-1-root"].account.name == "alice"
        assert db1["db-1-root"].zone.name == "demo-zone"


def test_vms_get_cloudstack_instance_names_display_names_and_accounts(db):
    load_demo(db)
    with db.uow() as uow:
        s = uow.session
        for vm in s.scalars(select(VirtualMachine)):
            assert vm.instance_name == f"i-{vm.account_id}-{vm.id}-VM"
            assert vm.display_name == vm.name and vm.hypervisor == "Hyperv"
        web = by_name(s, VirtualMachine, "web-1")
        assert (web.state, web.host.name, web.service_offering.name, web.account.name,
                web.zone.name) == ("Running", "hv-a1", "small-fast", "alice", "demo-zone")
        assert by_name(s, VirtualMachine, "legacy-1").account.name == "admin"
        accounts = {a.name: a.account_type for a in s.scalars(select(Account))}
        assert accounts == {"admin": 1, "alice": 0, "bob": 0, "ops": 2}


def test_a_stopped_vm_has_no_host_but_remembers_its_last_host(db):
    load_demo(db)
    with db.uow() as uow:
        idle = by_name(uow.session, VirtualMachine, "idle-1")
        last = uow.session.get(Host, idle.last_host_id)
        assert (idle.state, idle.host_id, last.name) == ("Stopped", None, "hv-b2")


def test_a_bad_file_loads_nothing(db, tmp_path):
    bad = DEMO.read_text().replace("pool: a-gold-2,", "pool: a-platinum,")
    path = tmp_path / "bad.yaml"
    path.write_text(bad)
    with pytest.raises(InventoryError, match=r"vms\[1\] \(db-1\)\.volumes\[1\]\.pool: no pool named 'a-platinum'"):
        inventory.load_file(db, path)
    assert [count(db, model) for model in (Zone, Host, StoragePool, Account, VirtualMachine)] == [0] * 5


def test_loading_the_demo_twice_is_rejected_and_changes_nothing(db):
    load_demo(db)
    with db.uow() as uow:
        before = inventory.dump(uow.session)
    with pytest.raises(InventoryError, match=r"zones\[0\] \(demo-zone\): a zone named 'demo-zone' "
                                             r"already exists \(and \d+ more\)"):
        load_demo(db)
    with db.uow() as uow:
        assert inventory.dump(uow.session) == before
    assert count(db, Host) == 6 and count(db, Account) == 4


def test_an_inventory_with_one_name_already_taken_writes_none_of_its_objects(db):
    load_demo(db)
    other = inventory.generate(clusters_per_pod=1, hosts_per_cluster=3)
    other["vms"][2]["name"] = "web-1"
    with pytest.raises(InventoryError, match=r"vms\[2\] \(web-1\): a VM named 'web-1' already exists$"):
        with db.uow() as uow:
            inventory.load(uow.session, other)
            uow.commit()
    assert count(db, Host) == 6 and count(db, Zone) == 1 and count(db, Account) == 4


def test_load_leaves_the_commit_to_the_caller(db):
    with db.uow() as uow:
        inventory.load(uow.session, inventory.parse(DEMO.read_text()))
        assert uow.session.scalar(select(func.count()).select_from(Host)) == 6
    assert count(db, Host) == 0 and count(db, Account) == 0


def test_an_existing_admin_account_is_reused_and_existing_accounts_are_kept(db):
    with db.uow() as uow:
        uow.session.add_all([Account(name="admin", account_type=1), Account(name="bob", account_type=0)])
        uow.commit()
    counts = load_demo(db)
    assert counts["accounts"] == 2  # alice and ops
    assert count(db, Account) == 4


def test_an_existing_account_with_another_role_is_rejected(db):
    with db.uow() as uow:
        uow.session.add(Account(name="ops", account_type=0))
        uow.commit()
    with pytest.raises(InventoryError, match=r"accounts\[2\] \(ops\): account 'ops' already exists "
                                             r"with account type 0, not 2"):
        load_demo(db)
    assert count(db, Host) == 0


def test_dump_round_trips_through_an_empty_database(db):
    load_demo(db)
    with db.uow() as uow:
        first = inventory.dump(uow.session)
    inventory.validate(first)
    with db.engine.begin() as connection:
        connection.exec_driver_sql(f"TRUNCATE {', '.join(TABLES)} CASCADE")
    with db.uow() as uow:
        inventory.load(uow.session, inventory.parse(inventory.to_yaml(first)))
        uow.commit()
    with db.uow() as uow:
        second = inventory.dump(uow.session)
        pools = {p.name: (p.scope, p.path, p.tags, p.capacity_bytes, p.host and p.host.name,
                          p.cluster and p.cluster.name) for p in uow.session.scalars(select(StoragePool))}
    assert second == first
    assert pools["hv-b1-local"] == ("HOST", "/local/hv-b1/hv-b1-local", "ssd", 100 << 30, "hv-b1",
                                    "r2-cluster-b")
    assert pools["zone-bulk"] == ("ZONE", "/shared/zone-bulk", "bulk", 4 << 40, None, None)


def test_dump_gives_the_demo_back_in_the_same_format(db):
    load_demo(db)
    with db.uow() as uow:
        dumped = inventory.dump(uow.session)
    demo = inventory.parse(DEMO.read_text())
    assert [vm["name"] for vm in dumped["vms"]] == [vm["name"] for vm in demo["vms"]]
    web = dumped["vms"][0]
    assert web == {"name": "web-1", "host": "hv-a1", "service_offering": "small-fast",
                   "state": "Running", "account": "alice",
                   "volumes": [{"name": "web-1-root", "type": "ROOT", "pool": "a-gold-1",
                                "size": "4MiB", "disk_offering": "shared-gold"}]}
    assert dumped["accounts"] == demo["accounts"]
    cluster_a = dumped["zones"][0]["pods"][0]["clusters"][0]
    assert cluster_a["hosts"][0] == demo["zones"][0]["pods"][0]["clusters"][0]["hosts"][0]


def test_a_generated_inventory_of_200_hosts_loads(db):
    data = inventory.generate(clusters_per_pod=10, hosts_per_cluster=20, shared_pools_per_cluster=3,
                              zone_pools=2, vms_per_host=2, data_volumes_per_vm=2, seed=3)
    with db.uow() as uow:
        counts = inventory.load(uow.session, data)
        uow.commit()
    assert (counts["hosts"], counts["pools"], counts["vms"], counts["volumes"]) == \
        (200, 200 + 30 + 2, 400, 1200)
    assert count(db, Volume) == 1200
    with db.uow() as uow:
        assert inventory.dump(uow.session) == data


def test_a_name_taken_between_the_check_and_the_insert_is_still_an_inventory_error(db, monkeypatch):
    load_demo(db)
    # Stand-in for a concurrent loader: the existence check sees nothing, the insert collides.
    monkeypatch.setattr(inventory_load, "_refuse_existing", lambda session, plan: None)
    with pytest.raises(InventoryError, match="conflicts with objects written meanwhile"):
        load_demo(db)
    assert count(db, Host) == 6
