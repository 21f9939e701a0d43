"""``db.fast_execute`` on PostgreSQL: a Core statement run on the driver inside the session's
transaction answers as SQLAlchemy would (rows, row counts, literal and NULL parameters), and a
driver error is raised as SQLAlchemy raises it, a lost connection invalidated."""
from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import bindparam, exc, select, update

from orchestrator import models
from orchestrator.db import driver_sql, fast_execute
from orchestrator.states import JobStatus
from tests.helpers import ids

pytestmark = pytest.mark.postgres

POOLS = (select(models.StoragePool.id, models.StoragePool.name.label("pool_name"))
         .where(models.StoragePool.name.like(bindparam("pattern")), models.StoragePool.id > 0)
         .order_by(models.StoragePool.id))
RENAME = (update(models.Volume).where(models.Volume.id == bindparam("volume_id"))
          .values(name=bindparam("name"), last_pool_id=None))


def test_rows_and_counts_are_those_of_sqlalchemy(db):
    with db.uow() as uow:
        core = uow.session.connection().execute(POOLS, {"pattern": "c1-%"}).all()
        fast = fast_execute(uow.session, POOLS, {"pattern": "c1-%"}).all()
    assert fast == [tuple(r) for r in core] and len(fast) >= 2
    assert [r.pool_name for r in fast] == [r.pool_name for r in core]  # attribute access by label


def test_an_update_runs_in_the_sessions_transaction_with_literal_and_null_values(db):
    [vol] = ids(db, models.Volume, "vm1-root")
    with db.uow() as uow:
        uow.session.connection().execute(update(models.Volume).where(models.Volume.id == vol)
                                         .values(last_pool_id=ids(db, models.StoragePool, "c1-gold")[0]))
        uow.commit()
    with db.uow() as uow:
        result = fast_execute(uow.session, RENAME, {"volume_id": vol, "name": "renamed"})
        assert result.rowcount == 1 and result.first() is None
        # not committed: the rollback at the end of the unit of work undoes it
    with db.uow() as uow:
        assert uow.session.get(models.Volume, vol).name == "vm1-root"
    with db.uow() as uow:
        fast_execute(uow.session, RENAME, {"volume_id": vol, "name": "renamed"})
        uow.commit()
    with db.uow() as uow:
        volume = uow.session.get(models.Volume, vol)
        assert (volume.name, volume.last_pool_id) == ("renamed", None)  # the NULL was sent too


def test_literal_parameters_are_compiled_once_with_their_values(db):
    statement = select(models.AsyncJob.id).where(models.AsyncJob.status == JobStatus.PENDING,
                                                 models.AsyncJob.id > bindparam("after"))
    sql, defaults = driver_sql(statement, db.engine.dialect)
    assert list(defaults.values()) == [JobStatus.PENDING] and "%(after)s" in sql
    assert driver_sql(statement, db.engine.dialect)[0] is sql
    with pytest.raises(ValueError, match="expanding"):
        driver_sql(select(models.Host.id).where(models.Host.id.in_([1, 2])), db.engine.dialect)


def test_a_driver_error_is_raised_as_sqlalchemy_raises_it_and_changes_nothing(db):
    [vol] = ids(db, models.Volume, "vm1-root")
    bad_pool = update(models.Volume).where(models.Volume.id == bindparam("volume_id")).values(
        pool_id=bindparam("pool_id"))
    with db.uow() as uow:
        with pytest.raises(exc.IntegrityError) as raised:
            fast_execute(uow.session, bad_pool, {"volume_id": vol, "pool_id": 999_999})
        assert isinstance(raised.value.orig, psycopg.errors.ForeignKeyViolation)
        assert not raised.value.connection_invalidated
    with db.uow() as uow:
        assert uow.session.get(models.Volume, vol).pool_id != 999_999


def test_a_lost_connection_is_invalidated_and_the_next_unit_of_work_gets_a_new_one(db):
    with db.uow() as uow:
        pid = uow.session.connection().exec_driver_sql("select pg_backend_pid()").scalar()
        with psycopg.connect(db.url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as admin:
            admin.execute("select pg_terminate_backend(%s)", (pid,))
        with pytest.raises(exc.DBAPIError) as raised:
            fast_execute(uow.session, POOLS, {"pattern": "%"})
        assert raised.value.connection_invalidated
    with db.uow() as uow:
        assert fast_execute(uow.session, POOLS, {"pattern": "c1-%"}).all()
        assert uow.session.connection().exec_driver_sql("select pg_backend_pid()").scalar() != pid
