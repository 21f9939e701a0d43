"""``orchestrator.prepared.PreparedRead`` on PostgreSQL: a SELECT run as a libpq prepared statement
answers the values SQLAlchemy would (integers, floats, timestamps, booleans, text, NULLs), raises
the driver's errors, is prepared again on a connection that lost it, and a lost connection is
replaced."""
from __future__ import annotations

from datetime import datetime

import psycopg
import pytest
from sqlalchemy import Integer, String, bindparam, cast, literal_column, select, text

from orchestrator import models
from orchestrator.db import make_engine
from orchestrator.prepared import PreparedRead
from tests.helpers import admin_caller

pytestmark = pytest.mark.postgres

JOB = models.AsyncJob
COLUMNS = (select(JOB.id, JOB.uuid, JOB.created, JOB.rate, JOB.eta, JOB.bytes_total, JOB.status_text,
                  JOB.cancel_requested_at, (JOB.status == literal_column("0")).label("pending"),
                  JOB.status_text.like(literal_column("'%100%%'")).label("full"))
           .where(JOB.uuid.in_([bindparam("first"), bindparam("second")])).order_by(JOB.id))


def add_jobs(db) -> list[str]:
    caller = admin_caller(db)
    with db.uow() as uow:
        jobs = [JOB(account_id=caller.account_id, user_id=caller.user_id, command="migrateVolume", cmd="x",
                    params="{}", created=datetime(2026, 11, 26, 11, 45, 1, 123456), rate=12.5, eta=3.25,
                    bytes_total=5 * 2 ** 40, status_text="hôte plein à 100%",
                    cancel_requested_at=datetime(2026, 11, 26, 11, 46)),
                JOB(account_id=caller.account_id, user_id=caller.user_id, command="migrateVolume", cmd="x",
                    params="{}", created=datetime(2026, 11, 26, 11, 45), status=2)]
        uow.session.add_all(jobs)
        uow.session.flush()
        uuids = [job.uuid for job in jobs]
        uow.commit()
    return uuids


def test_rows_are_those_of_sqlalchemy(db):
    first, second = add_jobs(db)
    params = {"first": first, "second": second}
    with db.engine.connect() as conn:
        expected = conn.execute(COLUMNS, params).all()
    rows = PreparedRead(COLUMNS, db.engine.dialect).run(db.engine, params)
    assert rows == [tuple(row) for row in expected] and len(rows) == 2
    assert rows[0].status_text == "hôte plein à 100%" and rows[0].full is True and rows[0].pending is True
    assert rows[1].eta is None and rows[1].full is None and rows[1].pending is False
    assert rows[0].created == datetime(2026, 11, 26, 11, 45, 1, 123456)
    assert PreparedRead(COLUMNS, db.engine.dialect).run(db.engine, {"first": "none", "second": "none"}) == []


def test_a_statement_the_connection_lost_is_prepared_again(pg_url):
    engine = make_engine(pg_url, pool_size=1, max_overflow=0)
    try:
        read = PreparedRead(select(JOB.id).where(JOB.uuid == bindparam("uuid")), engine.dialect)
        assert read.run(engine, {"uuid": "none"}) == []
        pooled = engine.raw_connection()
        backend = pooled.driver_connection.info.backend_pid
        pooled.driver_connection.pgconn.exec_(b"DEALLOCATE ALL")
        pooled.close()
        assert read.run(engine, {"uuid": "none"}) == []
        pooled = engine.raw_connection()
        assert pooled.driver_connection.info.backend_pid == backend  # the same connection, prepared again
        pooled.close()
    finally:
        engine.dispose()


def test_a_database_error_is_the_drivers_and_leaves_the_connection_usable(db):
    read = PreparedRead(select(cast(bindparam("n", type_=String), Integer).label("n")), db.engine.dialect)
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        read.run(db.engine, {"n": "seven"})
    assert read.run(db.engine, {"n": "7"}) == [(7,)]


def test_a_lost_connection_fails_once_and_is_replaced(pg_url):
    engine = make_engine(pg_url, ping_idle_seconds=60)  # as the API's: no ping at checkout here
    try:
        read = PreparedRead(select(JOB.id).where(JOB.uuid == bindparam("uuid")), engine.dialect)
        assert read.run(engine, {"uuid": "none"}) == []
        with engine.connect() as conn:  # a second pooled connection, older than the failure
            assert conn.execute(text("SELECT 1")).scalar() == 1
        with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        with pytest.raises(psycopg.OperationalError):
            read.run(engine, {"uuid": "none"})
        assert read.run(engine, {"uuid": "none"}) == []  # a new connection, the statement prepared on it
        with engine.connect() as conn:  # the older connection was replaced too
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_a_column_without_a_known_conversion_is_refused():
    from sqlalchemy.dialects import postgresql

    with pytest.raises(ValueError, match="no conversion"):
        PreparedRead(select(literal_column("1").label("one")), postgresql.dialect())


@pytest.mark.parametrize("options", [{"options": "-c DateStyle=SQL,DMY"}, {"client_encoding": "latin1"}],
                         ids=["dates-written-sql-dmy", "latin1"])
def test_another_date_style_or_encoding_reads_the_same(db, pg_url, options):
    first, second = add_jobs(db)
    params = {"first": first, "second": second}
    with db.engine.connect() as conn:
        expected = [tuple(row) for row in conn.execute(COLUMNS, params).all()]
    engine = make_engine(pg_url, connect_args=options, pool_size=1, max_overflow=0)
    try:
        assert PreparedRead(COLUMNS, engine.dialect).run(engine, params) == expected
        with engine.connect() as conn:  # dates written as ISO now; the day/month order for input kept
            assert conn.execute(text("SHOW DateStyle")).scalar() == ("ISO, DMY" if "options" in options else "ISO, MDY")
    finally:
        engine.dispose()
