"""Intake of migrateVolume on PostgreSQL: what it changes when it accepts, and that a refusal
(or losing a race) changes nothing."""
import threading

import pytest
from sqlalchemy import select

from orchestrator import models
from orchestrator.errors import InvalidParameter
from orchestrator.motion import migrate_volume
from tests.helpers import admin_caller, count, ids, volume_row

pytestmark = pytest.mark.postgres


def test_an_accepted_migration_marks_the_volume_migrating_and_enqueues_after_commit(db):
    caller = admin_caller(db)
    [vol] = ids(db, models.Volume, "vm1-root")
    [dest] = ids(db, models.StoragePool, "c1-gold-2")
    seen = []

    def enqueue(job_id):  # runs after commit: the job must already be visible to others
        with db.uow() as uow:
            seen.append(uow.session.get(models.AsyncJob, job_id).phase)

    job_uuid = migrate_volume(db, enqueue, caller, vol, dest, True, {})
    assert seen == ["queued"]
    assert volume_row(db, "vm1-root").state == "Migrating"
    with db.uow() as uow:
        job = uow.session.scalar(select(models.AsyncJob).where(models.AsyncJob.uuid == job_uuid))
        assert (job.status, job.phase, job.command) == (0, "queued", "migrateVolume")
        assert job.published_at is not None
        events = uow.session.scalars(select(models.Event).where(models.Event.job_id == job.id)).all()
        assert [(e.type, e.state) for e in events] == [("VOLUME.MIGRATE", "Scheduled")]


@pytest.mark.parametrize("volume,pool,live,reason", [
    ("vm1-root", "c1-gold", True, "already on storage pool"),
    ("vm1-root", "c2-gold", True, "different cluster"),
    ("vm1-root", "c1-silver", True, "storage tags do not match"),
    ("vm1-root", "c1-tiny", True, "not enough capacity"),
    ("vm1-root", "h1-local", True, "shared to local"),
    ("vm1-local", "c1-gold", True, "from local storage pool"),
    ("vm1-root", "c1-gold-2", False, "livemigrate"),
    ("vm-old-root", "old-b", True, "storage_migration_supported = 0"),
])
def test_a_refused_migration_names_the_reason_and_changes_nothing(db, volume, pool, live, reason):
    caller = admin_caller(db)
    [vol] = ids(db, models.Volume, volume)
    [dest] = ids(db, models.StoragePool, pool)
    enqueued = []
    with pytest.raises(InvalidParameter) as err:
        migrate_volume(db, enqueued.append, caller, vol, dest, live, {})
    assert reason in err.value.text
    assert err.value.errorcode == 431
    assert volume_row(db, volume).state == "Ready"
    assert count(db, models.AsyncJob) == 0 and count(db, models.Event) == 0 and enqueued == []


def test_of_two_concurrent_requests_for_one_volume_exactly_one_is_accepted(db):
    caller = admin_caller(db)
    [vol] = ids(db, models.Volume, "vm1-root")
    [dest] = ids(db, models.StoragePool, "c1-gold-2")
    barrier = threading.Barrier(2)
    outcomes = []

    def submit():
        barrier.wait()
        try:
            outcomes.append(("accepted", migrate_volume(db, lambda _id: None, caller, vol, dest, True, {})))
        except InvalidParameter as exc:
            outcomes.append(("refused", exc.text))

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(kind for kind, _ in outcomes) == ["accepted", "refused"]
    assert count(db, models.AsyncJob) == 1
    assert count(db, models.Event) == 1
    assert volume_row(db, "vm1-root").state == "Migrating"


@pytest.mark.parametrize("change,vm_state", [
    ("UPDATE virtual_machines SET state = 'Stopped' WHERE name = 'vm1'", "Stopped"),
    ("UPDATE volumes SET state = 'Migrating' WHERE name = 'vm1-root'", "Running"),
])
def test_a_change_between_the_checks_and_the_compare_and_set_refuses_and_changes_nothing(db, change, vm_state):
    """Given the volume and its VM read and checked, when another writer stops the VM or takes the
    volume before the compare-and-set, then the request is refused and neither row is changed by it."""
    from sqlalchemy import text

    from orchestrator.motion import VOLUME_INTAKE_OPTIONS, accept_volume_migration

    caller = admin_caller(db)
    [vol] = ids(db, models.Volume, "vm1-root")
    [dest] = ids(db, models.StoragePool, "c1-gold-2")
    before = volume_row(db, "vm1-root").state
    enqueued = []
    with db.uow() as uow:
        volume = uow.session.scalar(select(models.Volume).options(*VOLUME_INTAKE_OPTIONS)
                                    .where(models.Volume.id == vol))
        pool = uow.session.get(models.StoragePool, dest)
        with db.engine.begin() as other:
            other.execute(text(change))
        with pytest.raises(InvalidParameter) as err:
            accept_volume_migration(db, uow, enqueued.append, caller, volume, pool, True, {})
    assert "another operation has just taken it" in err.value.text
    with db.uow() as uow:
        assert uow.session.scalar(select(models.VirtualMachine.state).where(models.VirtualMachine.name == "vm1")) \
            == vm_state
    assert volume_row(db, "vm1-root").state == ("Migrating" if "volumes" in change else before)
    assert count(db, models.AsyncJob) == 0 and count(db, models.Event) == 0 and enqueued == []


def _uuids(db):
    with db.uow() as uow:
        volume = uow.session.scalar(select(models.Volume.uuid).where(models.Volume.name == "vm1-root"))
        pool = uow.session.scalar(select(models.StoragePool.uuid).where(models.StoragePool.name == "c1-gold-2"))
    return volume, pool


@pytest.mark.parametrize("change,vm_state", [
    ("UPDATE virtual_machines SET state = 'Stopped' WHERE name = 'vm1'", "Stopped"),
    ("UPDATE volumes SET state = 'Migrating' WHERE name = 'vm1-root'", "Running"),
    ("UPDATE virtual_machines SET host_id = (SELECT id FROM hosts WHERE name = 'h2') WHERE name = 'vm1'",
     "Running"),
])
def test_two_statement_intake_refuses_a_change_between_its_read_and_its_write(db, monkeypatch, change, vm_state):
    """Given the read and the checks done (``intake_pg``), when another writer stops the VM, takes
    the volume or moves the VM before the write, then the write records nothing and the request is
    refused; the other writer's change stands."""
    from sqlalchemy import text

    from orchestrator import intake_pg

    caller, (volume, pool), enqueued = admin_caller(db), _uuids(db), []
    checked = intake_pg.check_migrate_volume

    def check_then_change(*args, **kwargs):
        facts = checked(*args, **kwargs)
        with db.engine.begin() as other:
            other.execute(text(change))
        return facts
    monkeypatch.setattr(intake_pg, "check_migrate_volume", check_then_change)
    with pytest.raises(InvalidParameter) as err:
        intake_pg.submit(db, enqueued.append, caller, volume, pool, True, {})
    assert "another operation has just taken it" in err.value.text
    with db.uow() as uow:
        assert uow.session.scalar(select(models.VirtualMachine.state).where(models.VirtualMachine.name == "vm1")) \
            == vm_state
    assert volume_row(db, "vm1-root").state == ("Migrating" if "volumes" in change else "Ready")
    assert count(db, models.AsyncJob) == 0 and count(db, models.Event) == 0 and enqueued == []
    assert count(db, models.JobResource) == 0


def test_two_statement_intake_records_the_job_as_the_transaction_does(db):
    caller, (volume, pool), enqueued = admin_caller(db), _uuids(db), []
    job_uuid = intake_pg_submit(db, enqueued, caller, volume, pool)
    assert volume_row(db, "vm1-root").state == "Migrating"
    with db.uow() as uow:
        job = uow.session.scalar(select(models.AsyncJob).where(models.AsyncJob.uuid == job_uuid))
        [resource] = uow.session.scalars(select(models.JobResource).where(models.JobResource.job_id == job.id))
        [event] = uow.session.scalars(select(models.Event).where(models.Event.job_id == job.id))
        assert enqueued == [job.id] and job.published_at is not None
        assert (job.status, job.phase, job.command, job.start_event_id) == (0, "queued", "migrateVolume", event.id)
        assert (resource.resource_type, resource.dest_host_id) == ("Volume", None)
        assert resource.src_pool_id != resource.dest_pool_id and resource.src_host_id == job.host_id
        assert (event.state, event.start_id, event.type) == ("Scheduled", event.id, "VOLUME.MIGRATE")
    with pytest.raises(InvalidParameter, match="must be in Ready state"):  # and again: it is Migrating now
        intake_pg_submit(db, enqueued, caller, volume, pool)
    assert count(db, models.AsyncJob) == 1


def test_two_statement_intake_leaves_an_unknown_volume_or_pool_to_the_lookups(db):
    from orchestrator import intake_pg

    caller, (volume, pool) = admin_caller(db), _uuids(db)
    assert intake_pg.submit(db, lambda _id: None, caller, volume, "00000000-0000-0000-0000-000000000000", True, {}) \
        is None
    assert intake_pg.submit(db, lambda _id: None, caller, "00000000-0000-0000-0000-000000000000", pool, True, {}) \
        is None
    assert count(db, models.AsyncJob) == 0 and volume_row(db, "vm1-root").state == "Ready"


def intake_pg_submit(db, enqueued, caller, volume, pool):
    from orchestrator import intake_pg

    return intake_pg.submit(db, enqueued.append, caller, volume, pool, True, {"volumeid": volume})


def test_two_statement_intake_writes_once_more_after_losing_a_deadlock(db, monkeypatch):
    from psycopg.errors import DeadlockDetected

    from orchestrator import intake_pg

    caller, (volume, pool), enqueued = admin_caller(db), _uuids(db), []
    real, writes = intake_pg.driver_execute, []

    def deadlock_first_write(engine, sql, params=None, *args):
        if sql.startswith("WITH locked_vm"):
            writes.append(sql)
            if len(writes) == 1:
                raise DeadlockDetected("deadlock detected")
        return real(engine, sql, params, *args)
    monkeypatch.setattr(intake_pg, "driver_execute", deadlock_first_write)
    job_uuid = intake_pg_submit(db, enqueued, caller, volume, pool)
    assert len(writes) == 2 and len(enqueued) == 1
    assert count(db, models.AsyncJob) == 1 and volume_row(db, "vm1-root").state == "Migrating"
    with db.uow() as uow:
        assert uow.session.scalar(select(models.AsyncJob.id).where(models.AsyncJob.uuid == job_uuid)) == enqueued[0]
