"""Alembic owns the schema: revisions 0001/0002 on PostgreSQL, capability rows as the spec says."""
import pytest
from sqlalchemy import select

import migrations
from orchestrator.db import Database
from orchestrator.models import HypervisorCapability

pytestmark = pytest.mark.postgres


def capabilities(url):
    db = Database(url)
    with db.uow() as uow:
        rows = uow.session.execute(select(HypervisorCapability.hypervisor_version,
                                          HypervisorCapability.storage_migration_supported)
                                   .where(HypervisorCapability.hypervisor_type == "Hyperv")).all()
    db.dispose()
    return dict(rows)


def test_initial_revision_creates_2012_and_2012r2_without_storage_motion(pg_empty_url):
    migrations.upgrade(pg_empty_url, "0001")
    assert capabilities(pg_empty_url) == {"6.2": False, "6.3": False}


def test_second_revision_enables_storage_motion_for_2012r2_only_and_downgrades_back(pg_empty_url):
    migrations.upgrade(pg_empty_url, "0002")
    assert migrations.current(pg_empty_url).startswith("0002")
    assert capabilities(pg_empty_url) == {"6.2": False, "6.3": True}
    migrations.downgrade(pg_empty_url, "0001")
    assert capabilities(pg_empty_url) == {"6.2": False, "6.3": False}
    migrations.downgrade(pg_empty_url, "base")
    assert migrations.current(pg_empty_url) == ""


def test_every_revision_upgrades_to_head_and_downgrades_to_nothing(pg_empty_url):
    migrations.upgrade(pg_empty_url)
    assert "(head)" in migrations.current(pg_empty_url)
    assert capabilities(pg_empty_url) == {"6.2": False, "6.3": True}
    migrations.downgrade(pg_empty_url, "base")
    assert migrations.current(pg_empty_url) == ""
    migrations.upgrade(pg_empty_url)
    assert "(head)" in migrations.current(pg_empty_url)
