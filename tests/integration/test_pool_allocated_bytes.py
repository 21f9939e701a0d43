"""``storage_pools.allocated_bytes`` (migration 0008's triggers) always equals the sum of the sizes
of the volumes on the pool: after an inventory load, single and multi-row inserts, moves and
resizes through the ORM and through Core, deletes, rolled-back changes, and (PostgreSQL) TRUNCATE;
and the upgrade computes it for volumes that were there before it. SQLite and PostgreSQL."""
from __future__ import annotations

import random
import secrets

import pytest
from sqlalchemy import delete, func, insert, select, text, update

import migrations
from orchestrator import inventory, models
from orchestrator.db import Database

MIB = 1024 * 1024


def mismatches(session) -> list[tuple]:
    """(pool, recorded, actual) for every pool whose column differs from its volumes' sum."""
    sums = dict(session.execute(select(models.Volume.pool_id, func.sum(models.Volume.size))
                                .group_by(models.Volume.pool_id)).all())
    rows = session.execute(select(models.StoragePool.id, models.StoragePool.allocated_bytes)).all()
    return [(pid, recorded, int(sums.get(pid) or 0)) for pid, recorded in rows if recorded != int(sums.get(pid) or 0)]


def load(url: str, seed: int) -> Database:
    migrations.upgrade(url)
    db = Database(url)
    with db.uow() as uow:
        inventory.load(uow.session, inventory.generate(clusters_per_pod=2, hosts_per_cluster=2,
                                                       shared_pools_per_cluster=3, zone_pools=1,
                                                       vms_per_host=2, data_volumes_per_vm=3,
                                                       volume_size="1MiB", seed=seed))
        uow.commit()
    return db


def new_volume(session, rng: random.Random, template: models.Volume, pool_id: int) -> dict:
    return dict(uuid=f"t-{secrets.token_hex(6)}", name=f"t-{secrets.token_hex(4)}", zone_id=template.zone_id,
                vm_id=None, device_id=None, volume_type="DATADISK", state="Ready", pool_id=pool_id,
                last_pool_id=None, size=rng.randrange(MIB, 8 * MIB, 4096),
                disk_offering_id=template.disk_offering_id, account_id=template.account_id,
                path=f"/t/{secrets.token_hex(4)}")


def churn(db: Database, seed: int, rounds: int = 30) -> None:
    rng = random.Random(seed)
    for _ in range(rounds):
        with db.uow() as uow:
            s = uow.session
            pools = list(s.scalars(select(models.StoragePool.id)))
            volumes = list(s.scalars(select(models.Volume)))
            step = rng.choice(("orm-move", "orm-resize", "core-move-many", "core-insert-many", "orm-insert",
                               "core-delete", "orm-delete", "same-pool", "rolled-back"))
            if step == "orm-move":
                rng.choice(volumes).pool_id = rng.choice(pools)
            elif step == "orm-resize":
                rng.choice(volumes).size = rng.randrange(MIB, 8 * MIB, 4096)
            elif step == "core-move-many":
                ids = [v.id for v in rng.sample(volumes, min(5, len(volumes)))]
                s.execute(update(models.Volume).where(models.Volume.id.in_(ids))
                          .values(pool_id=rng.choice(pools), size=models.Volume.size + 4096)
                          .execution_options(synchronize_session=False))
            elif step == "core-insert-many":
                s.execute(insert(models.Volume), [new_volume(s, rng, volumes[0], rng.choice(pools)) for _ in range(4)])
            elif step == "orm-insert":
                s.add(models.Volume(**new_volume(s, rng, volumes[0], rng.choice(pools))))
            elif step in ("core-delete", "orm-delete"):
                mine = [v for v in volumes if v.uuid.startswith("t-")]
                if mine and step == "core-delete":
                    s.execute(delete(models.Volume).where(models.Volume.id.in_([v.id for v in mine[:3]])))
                elif mine:
                    s.delete(mine[0])
            elif step == "same-pool":  # pool_id set to what it was: nothing changes
                v = rng.choice(volumes)
                s.execute(update(models.Volume).where(models.Volume.id == v.id).values(pool_id=v.pool_id))
            else:
                rng.choice(volumes).pool_id = rng.choice(pools)
                s.flush()
                continue  # leaving the unit of work without commit rolls it back
            uow.commit()
        with db.uow() as uow:
            assert mismatches(uow.session) == [], f"after {step}"


@pytest.mark.parametrize("seed", range(3))
def test_allocated_bytes_follow_the_volumes_on_sqlite(tmp_path, seed):
    db = load(f"sqlite:///{tmp_path / f'a{seed}.db'}", seed)
    try:
        with db.uow() as uow:
            assert mismatches(uow.session) == []
            assert uow.session.scalar(select(func.sum(models.StoragePool.allocated_bytes))) > 0
        churn(db, seed)
    finally:
        db.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("seed", range(2))
def test_allocated_bytes_follow_the_volumes_on_postgres(pg_url, seed):
    db = load(pg_url, seed)
    try:
        with db.uow() as uow:
            assert mismatches(uow.session) == []
            assert uow.session.scalar(select(func.sum(models.StoragePool.allocated_bytes))) > 0
        churn(db, seed)
        with db.engine.begin() as conn:
            conn.execute(text("TRUNCATE volumes CASCADE"))
        with db.uow() as uow:
            assert mismatches(uow.session) == []
            assert uow.session.scalar(select(func.sum(models.StoragePool.allocated_bytes))) == 0
    finally:
        db.dispose()


@pytest.mark.postgres
def test_the_upgrade_computes_the_column_for_volumes_already_there(pg_empty_url):
    migrations.upgrade(pg_empty_url, "0007")
    db = Database(pg_empty_url)
    try:
        with db.uow() as uow:
            inventory.load(uow.session, inventory.generate(vms_per_host=2, data_volumes_per_vm=2, seed=3))
            uow.commit()
        migrations.upgrade(pg_empty_url)
        with db.uow() as uow:
            assert mismatches(uow.session) == []
            assert uow.session.scalar(select(func.sum(models.StoragePool.allocated_bytes))) > 0
        migrations.downgrade(pg_empty_url, "0007")
        migrations.upgrade(pg_empty_url)
        with db.uow() as uow:
            assert mismatches(uow.session) == []
    finally:
        db.dispose()
