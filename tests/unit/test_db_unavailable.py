"""``db.unavailable``: which database errors are an outage (the API says "unavailable, try again")
and which are a statement's fault, a deadlock included (an internal error, logged with its
traceback, so that the chaos run's report and an operator see it)."""
import sqlite3

import psycopg
from psycopg import errors as pg
from sqlalchemy import exc as sa

from orchestrator.db import unavailable


def wrapped(cls, orig, invalidated=False):
    return cls("SELECT 1", {}, orig, connection_invalidated=invalidated)


def test_a_lost_or_refused_connection_and_a_busy_server_are_an_outage():
    assert unavailable(wrapped(sa.OperationalError, psycopg.OperationalError("connection refused")))
    assert unavailable(wrapped(sa.OperationalError, pg.AdminShutdown("terminating connection")))
    assert unavailable(wrapped(sa.OperationalError, pg.CannotConnectNow("the database system is starting up")))
    assert unavailable(wrapped(sa.OperationalError, pg.TooManyConnections("too many clients")))
    assert unavailable(wrapped(sa.OperationalError, sqlite3.OperationalError("database is locked")))
    assert unavailable(psycopg.OperationalError("the driver's own, unwrapped"))
    assert unavailable(wrapped(sa.DBAPIError, psycopg.InterfaceError("closed"), invalidated=True))


def test_a_statement_at_fault_is_not():
    assert not unavailable(wrapped(sa.OperationalError, pg.DeadlockDetected("deadlock detected")))
    assert not unavailable(wrapped(sa.OperationalError, pg.QueryCanceled("statement timeout")))
    assert not unavailable(wrapped(sa.OperationalError, sqlite3.OperationalError("no such table: jobs")))
    assert not unavailable(wrapped(sa.IntegrityError, pg.UniqueViolation("duplicate key")))
    assert not unavailable(wrapped(sa.ProgrammingError, pg.UndefinedTable("no such table")))
    assert not unavailable(wrapped(sa.DBAPIError, psycopg.InterfaceError("closed")))
    assert not unavailable(ValueError("not a database error"))
    assert not unavailable(KeyError("vm"))
