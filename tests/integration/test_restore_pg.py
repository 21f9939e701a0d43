"""Restoring the database from a backup older than the agents' files, on PostgreSQL with real
host agents over HTTP and real volume files (docs/operations.md, "Backups and restore").

A backup is a copy of the database as it was (here ``CREATE DATABASE ... TEMPLATE``, what a
``pg_dump`` and ``pg_restore`` of that moment give). Migrations that finished after it are on the
agents' disks but not in the restored database. The scheduler's sweep brings the two together:
a job that was pending in the backup is woken and its worker, posting the same command id,
learns from the agent that the command already succeeded; a volume at rest whose file has moved
is recorded where the agent finds it. Nothing is copied twice and no data is lost."""
from __future__ import annotations

import hashlib

import psycopg
import pytest
from sqlalchemy import select

from orchestrator import models, reconcile, truth
from orchestrator.config import Settings
from orchestrator.db import Database
from orchestrator.motion import migrate_volume
from orchestrator.provision import provision_volumes
from orchestrator.runner import Runner
from orchestrator.vm_motion import migrate_vm
from tests.conftest import PG_ADMIN_URL, _plain
from tests.helpers import admin_caller, ids, volume_row
from tests.integration import test_truth_pg as truth_tests
from workers.agent_client import AgentClient

pytestmark = pytest.mark.postgres

# The small inventory and real agents serving its hosts, as the truth reconciler's tests have them
db, agents, pool_dir = truth_tests.db, truth_tests.agents, truth_tests.pool_dir


@pytest.fixture
def conf(db, agents):
    conf = Settings(database_url=db.url, worker_id="w-restore", agent_url=agents.url + "/hosts/{host}",
                    agent_timeout=5.0, poll_interval=0.02)
    provision_volumes(db, AgentClient(), conf)
    return conf


class Backup:
    """A copy of the database as it is now; ``restore()`` puts it back in the database's place."""

    def __init__(self, db: Database):
        self.db = db
        self.name = db.url.rsplit("/", 1)[1]
        self.copy = f"{self.name}_backup"
        self._admin(f'CREATE DATABASE "{self.copy}" TEMPLATE "{self.name}"')

    def _admin(self, *statements: str) -> None:
        self.db.engine.dispose()  # a template must have no other connection
        with psycopg.connect(_plain(PG_ADMIN_URL), autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def restore(self) -> None:
        self._admin(f'DROP DATABASE "{self.name}" WITH (FORCE)',
                    f'CREATE DATABASE "{self.name}" TEMPLATE "{self.copy}"')

    def drop(self) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.copy}" WITH (FORCE)')


@pytest.fixture
def take_backup(db):
    taken = []
    yield lambda: taken.append(Backup(db)) or taken[-1]
    for backup in taken:
        backup.drop()


def submit(db, volume: str, pool: str) -> int:
    [vol], [dest] = ids(db, models.Volume, volume), ids(db, models.StoragePool, pool)
    uuid = migrate_volume(db, lambda job_id: None, admin_caller(db), vol, dest, True, {})
    with db.uow() as uow:
        return uow.session.scalar(select(models.AsyncJob.id).where(models.AsyncJob.uuid == uuid))


def digest(agents, db, volume: str, pool: str) -> str | None:
    path = pool_dir(agents, db, pool) / volume_row(db, volume).path
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def volumes_of(db, vm: str) -> list[models.Volume]:
    with db.uow() as uow:
        rows = list(uow.session.scalars(select(models.Volume).join(models.VirtualMachine)
                                        .where(models.VirtualMachine.name == vm).order_by(models.Volume.id)))
        uow.session.expunge_all()
        return rows


def job_status(db, job_id: int) -> int | None:
    with db.uow() as uow:
        return uow.session.scalar(select(models.AsyncJob.status).where(models.AsyncJob.id == job_id))


def test_a_job_pending_in_the_backup_finishes_from_the_agents_record_without_a_second_copy(db, agents, conf,
                                                                                          take_backup):
    # Given a migration accepted, then the backup taken, then the migration done
    job_id = submit(db, "vm1-root", "c1-gold-2")
    before = digest(agents, db, "vm1-root", "c1-gold")
    backup = take_backup()
    assert Runner(db, AgentClient(), conf).run(job_id) == "succeeded"
    assert digest(agents, db, "vm1-root", "c1-gold") is None
    # When the database is restored: the job pending again, the volume Migrating on c1-gold
    backup.restore()
    assert job_status(db, job_id) == 0 and volume_row(db, "vm1-root").state == "Migrating"
    # Then the sweep wakes the job (its broker message is long gone) ...
    woken = []
    assert reconcile.wake_stranded(db, woken.append, quiet_s=0, backlog=0) == 1 and woken == [job_id]
    # ... and its worker learns from the agent's record, by the same command id, that it succeeded
    # (a second copy could not succeed: the source file is gone)
    assert Runner(db, AgentClient(), conf).run(job_id) == "succeeded"
    vol = volume_row(db, "vm1-root")
    [gold, gold2] = ids(db, models.StoragePool, "c1-gold", "c1-gold-2")
    assert (vol.state, vol.pool_id) == ("Ready", gold2) and job_status(db, job_id) == 1
    assert digest(agents, db, "vm1-root", "c1-gold-2") == before
    assert digest(agents, db, "vm1-root", "c1-gold") is None


def test_a_volume_moved_after_the_backup_is_recorded_where_its_file_is(db, agents, conf, take_backup):
    # Given the backup taken, then a migration done
    before = digest(agents, db, "vm1-root", "c1-gold")
    backup = take_backup()
    job_id = submit(db, "vm1-root", "c1-gold-2")
    assert Runner(db, AgentClient(), conf).run(job_id) == "succeeded"
    # When the database is restored: no such job, the volume Ready on c1-gold, its file elsewhere
    backup.restore()
    [gold, gold2] = ids(db, models.StoragePool, "c1-gold", "c1-gold-2")
    assert job_status(db, job_id) is None and volume_row(db, "vm1-root").pool_id == gold
    # Then the sweep's truth check records it on c1-gold-2, with an event saying so
    result = reconcile.sweep(db, lambda job_id: None, AgentClient(), conf)
    assert result["repaired"] == 1
    vol = volume_row(db, "vm1-root")
    assert (vol.state, vol.pool_id, vol.last_pool_id) == ("Ready", gold2, gold)
    with db.uow() as uow:
        [text] = uow.session.scalars(select(models.Event.description).where(models.Event.type == "VOLUME.RECONCILE"))
    assert "vm1-root" in text and "c1-gold-2" in text
    # And the volume moves on from there: back to c1-gold, data intact
    back = submit(db, "vm1-root", "c1-gold")
    assert Runner(db, AgentClient(), conf).run(back) == "succeeded"
    assert digest(agents, db, "vm1-root", "c1-gold") == before
    assert truth.reconcile_truth(db, AgentClient(), conf).repairs == []


def vm_host(db, name: str) -> str:
    with db.uow() as uow:
        vm = uow.session.scalar(select(models.VirtualMachine).where(models.VirtualMachine.name == name))
        return uow.session.get(models.Host, vm.host_id).name


def test_a_vm_moved_with_its_volumes_after_the_backup_is_recorded_where_it_runs(db, agents, conf, take_backup):
    # Given the backup taken, then vm1 live-migrated with its volumes from h1 to h3
    backup = take_backup()
    [vm_id], [h3] = ids(db, models.VirtualMachine, "vm1"), ids(db, models.Host, "h3")
    jobs = []
    migrate_vm(db, jobs.append, admin_caller(db), vm_id, h3, {}, {}, True)
    assert Runner(db, AgentClient(), conf).run(jobs[0]) == "succeeded"
    moved = {v.name: (v.pool_id, v.path) for v in volumes_of(db, "vm1")}
    # When the database is restored: vm1 recorded on h1 again, its volumes on their old pools
    backup.restore()
    assert vm_host(db, "vm1") == "h1" and {v.name: (v.pool_id, v.path) for v in volumes_of(db, "vm1")} != moved
    # Then the truth checks record the VM where it runs and each volume where its file is
    for _ in range(3):
        if not truth.reconcile_truth(db, AgentClient(), conf).repairs:
            break
    assert vm_host(db, "vm1") == "h3"
    assert {v.name: (v.pool_id, v.path) for v in volumes_of(db, "vm1")} == moved
    assert all(v.state == "Ready" for v in volumes_of(db, "vm1"))
    assert truth.reconcile_truth(db, AgentClient(), conf).repairs == []
