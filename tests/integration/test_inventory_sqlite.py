"""Loading the demo inventory into the embedded database: a SQLite file migrated by Alembic."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

import migrations
from orchestrator import inventory
from orchestrator.db import Database
from orchestrator.models import StoragePool, VirtualMachine, Volume

DEMO = Path(__file__).resolve().parents[2] / "motion" / "demo-inventory.yaml"


def test_the_demo_inventory_loads_into_sqlite_and_dumps_back(tmp_path):
    url = f"sqlite:///{tmp_path / 'motion.db'}"
    migrations.upgrade(url)
    db = Database(url)
    try:
        counts = inventory.load_file(db, DEMO)
        assert counts == dict(zones=1, pods=1, clusters=3, hosts=6, pools=14, disk_offerings=5,
                              service_offerings=4, accounts=4, vms=8, volumes=14)
        with db.uow() as uow:
            s = uow.session
            assert s.scalar(select(func.count()).select_from(Volume)) == 14
            for vm in s.scalars(select(VirtualMachine)):
                assert vm.instance_name == f"i-{vm.account_id}-{vm.id}-VM"
            local = s.scalars(select(StoragePool).where(StoragePool.name == "hv-b2-local")).one()
            assert (local.scope, local.is_local, local.host.name) == ("HOST", True, "hv-b2")
            assert all(v.path == f"{v.uuid}.vhdx" for v in s.scalars(select(Volume)))
            dumped = inventory.dump(s)
        demo = inventory.parse(DEMO.read_text())
        assert [vm["name"] for vm in dumped["vms"]] == [vm["name"] for vm in demo["vms"]]
        inventory.validate(dumped)
    finally:
        db.dispose()
