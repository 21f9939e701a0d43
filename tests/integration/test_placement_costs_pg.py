"""What judging every host of a zone for findHostsForMigration costs in database work, on
PostgreSQL: a fixed handful of statements, the same for a zone of 4 hosts and one of 60, and
never a query per host or per pool; and no statement sums the volumes (pools carry their
allocated bytes)."""
from __future__ import annotations

import pytest
from sqlalchemy import select

import migrations
from orchestrator import inventory, models
from orchestrator.db import Database
from orchestrator.suitability import VmMove
from tests.integration.test_api_costs_pg import Statements

pytestmark = pytest.mark.postgres


def judged(url: str, clusters: int, hosts: int) -> tuple[list[str], int]:
    """The statements of judging every host for one running VM, and how many hosts were judged."""
    migrations.upgrade(url)
    db = Database(url)
    try:
        with db.uow() as uow:
            inventory.load(uow.session, inventory.generate(clusters_per_pod=clusters, hosts_per_cluster=hosts,
                                                           shared_pools_per_cluster=4, zone_pools=1,
                                                           vms_per_host=1, data_volumes_per_vm=2, seed=5))
            uow.commit()
        with db.uow() as uow:
            vm = uow.session.scalars(select(models.VirtualMachine).order_by(models.VirtualMachine.id)).first()
            with Statements(db.engine) as seen:
                verdicts = VmMove(uow.session, vm).candidates()
        return seen.statements, len(verdicts)
    finally:
        db.dispose()


def test_judging_a_zone_takes_the_same_few_statements_whatever_its_size(pg_url, pg_empty_url):
    small, small_hosts = judged(pg_url, clusters=2, hosts=2)
    large, large_hosts = judged(pg_empty_url, clusters=12, hosts=5)
    assert (small_hosts, large_hosts) == (3, 59)
    assert len(small) == len(large) <= 7, large
    assert not [s for s in large if "sum(volumes.size)" in s.lower()], "pools carry allocated_bytes"
