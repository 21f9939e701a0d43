"""findHostsForMigration reads only the shared pools that can win a place (pool_facts.candidate_pools);
over random clouds - many pools per cluster, random tags, states, capacities, allocations and
overprovisioning factors - its verdicts are exactly those computed over every pool of the zone.
Run on SQLite and on PostgreSQL (where room is computed with floor(), not CAST)."""
from __future__ import annotations

import random
import secrets

import pytest
from sqlalchemy import select

import migrations
from orchestrator import globalconfig, inventory, models
from orchestrator.db import Database
from orchestrator.suitability import VmMove

MIB = 1024 * 1024
TAGS = ("", "", "gold", "silver", "gold,ssd", "ssd", " gold , fast")


def randomise(session, rng: random.Random) -> None:
    for pool in session.scalars(select(models.StoragePool)):
        pool.state = rng.choice(("Up", "Up", "Up", "Up", "Maintenance", "Disabled"))
        if not pool.is_local:
            pool.tags = rng.choice(TAGS)
        # Rooms a volume apart or less, so placing one volume reorders the pools.
        pool.capacity_bytes = rng.choice((rng.randrange(MIB // 2, 8 * MIB, 4096), rng.choice((3 * MIB, 64 * MIB))))
    for offering in session.scalars(select(models.DiskOffering)):
        offering.tags = rng.choice(("", "", "gold", "ssd", "gold,ssd"))
    for volume in session.scalars(select(models.Volume)):
        volume.size = rng.randrange(MIB // 4, 2 * MIB, 4096)
    factor = rng.choice(("1", "1.5", "2", "0.7", "2.3"))
    row = session.scalar(select(models.Configuration).where(models.Configuration.name == "storage.overprovisioning.factor"))
    row.value = factor


def verdicts(move: VmMove) -> list[tuple]:
    return [(v.facts.name, v.suitable, v.requires_storage_motion, v.has_enough_capacity, tuple(v.reasons),
             tuple(sorted(v.placement.items()))) for v in move.candidates()]


def check_every_vm(url: str, seed: int) -> int:
    rng = random.Random(seed)
    data = inventory.generate(clusters_per_pod=rng.randint(2, 3), hosts_per_cluster=rng.randint(1, 3),
                              shared_pools_per_cluster=rng.randint(1, 8), zone_pools=rng.randint(0, 2),
                              vms_per_host=rng.randint(1, 2), data_volumes_per_vm=rng.randint(0, 4),
                              volume_size="1MiB", seed=seed)
    migrations.upgrade(url)
    db = Database(url)
    try:
        with db.uow() as uow:
            inventory.load(uow.session, data)
            randomise(uow.session, rng)
            uow.commit()
        compared = 0
        with db.uow() as uow:
            s = uow.session
            assert globalconfig.overprovisioning_factor(s) > 0
            for vm in s.scalars(select(models.VirtualMachine).where(models.VirtualMachine.state == "Running")):
                partial = VmMove(s, vm)
                whole = VmMove(s, vm)
                whole._load_whole_zone()
                assert verdicts(partial) == verdicts(whole), f"seed {seed}, VM {vm.name}"
                compared += 1
        return compared
    finally:
        db.dispose()


@pytest.mark.parametrize("seed", range(12))
def test_candidate_pools_give_the_same_verdicts_as_every_pool_on_sqlite(tmp_path, seed):
    assert check_every_vm(f"sqlite:///{tmp_path / f'c{seed}-{secrets.token_hex(3)}.db'}", seed) > 0


@pytest.mark.postgres
@pytest.mark.parametrize("seed", range(100, 106))
def test_candidate_pools_give_the_same_verdicts_as_every_pool_on_postgres(pg_url, seed):
    assert check_every_vm(pg_url, seed) > 0
