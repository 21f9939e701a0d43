"""A SELECT run as a libpq prepared statement: the API's hottest read (a poll) on PostgreSQL.

``PreparedRead(statement, dialect).run(engine, params)`` prepares the statement once per pooled
connection, under a name of its own, and runs it with libpq's ``PQexecPrepared`` on that
connection's ``pgconn``: no cursor, no query conversion, no result machinery. Under a poll load
those layers of psycopg cost about as much CPU as the rest of the poll (docs/benchmarks.md,
section 2). The values come back as text and are converted by the statement's column types, as
psycopg would (integers, floats, timestamps without time zone, booleans, strings in the
connection's encoding); a statement with a column of another type is refused when it is built.
A connection whose ``DateStyle`` does not write ISO dates is set to (``SET DateStyle TO ISO``,
which keeps its day/month order for input) before the first statement is prepared on it.

The statement runs outside any transaction (one statement sees one snapshot by itself), leaving
the connection idle as it was lent. A lost connection is handled as for ``db.driver_execute``
(``db.lent``): the pool replaces it and every older one, and the error is raised. A statement
the server no longer knows (psycopg deallocates all prepared statements when it rolls a
connection back) is prepared again, once.
"""
from __future__ import annotations

import hashlib
import re
from collections import namedtuple
from datetime import datetime

import psycopg
from psycopg import pq
from sqlalchemy import types as sqltypes
from sqlalchemy.engine import Engine

from .db import lent, plain_sql

UNDEFINED_STATEMENT = "26000"  # invalid_sql_statement_name: not prepared on this connection


def _boolean(value: bytes) -> bool:
    return value == b"t"


def _timestamp(value: bytes) -> datetime:
    return datetime.fromisoformat(value.decode("ascii"))


def converter(column_type):
    """The function making a column's Python value from its text (``DateStyle`` ISO); ``str``
    stands for text, which ``PreparedRead.converters`` decodes in the connection's encoding."""
    if isinstance(column_type, sqltypes.Boolean):
        return _boolean
    if isinstance(column_type, sqltypes.Integer):
        return int  # int(b"42") and float(b"1.5") read ASCII digits as they are
    if isinstance(column_type, sqltypes.Float):
        return float
    if isinstance(column_type, sqltypes.DateTime) and not column_type.timezone:
        return _timestamp
    if isinstance(column_type, sqltypes.String):  # Text too: decoded in the connection's encoding
        return str
    raise ValueError(f"PreparedRead: no conversion for a column of type {column_type!r}")


class PreparedRead:
    """One SELECT whose parameters are plain bound names (``db.plain_sql``), run on PostgreSQL."""

    def __init__(self, statement, dialect):
        sql = plain_sql(statement, dialect)
        self.names: list[str] = []

        def placeholder(match: re.Match) -> str:
            if match.group(0) == "%%":
                return "%"
            if match.group(1) not in self.names:
                self.names.append(match.group(1))
            return f"${self.names.index(match.group(1)) + 1}"
        self.sql = re.sub(r"%%|%\((\w+)\)s", placeholder, sql).encode("utf-8")
        self.name = b"motion_" + hashlib.sha1(self.sql).hexdigest()[:16].encode("ascii")
        columns = list(statement.selected_columns)
        self.kinds = [converter(column.type) for column in columns]
        self.row = namedtuple("Row", [column.key for column in columns])._make
        self._converters: dict[str, list] = {}

    def converters(self, encoding: str) -> list:
        """The column converters for a connection's encoding (``str``: text in that encoding)."""
        found = self._converters.get(encoding)
        if found is None:
            text = bytes.decode if encoding == "utf-8" else (lambda value: value.decode(encoding))
            found = self._converters[encoding] = [text if kind is str else kind for kind in self.kinds]
        return found

    def run(self, engine: Engine, params: dict) -> list:
        """The rows, as named tuples of the statement's column names."""
        with lent(engine) as pooled:
            pgconn = pooled.driver_connection.pgconn
            prepared = pooled.info.get("motion_prepared")
            if prepared is None:  # a connection not used here before
                prepared = _first_use(pooled)
            values = [None if params[n] is None else str(params[n]).encode(prepared.encoding) for n in self.names]
            if self.name not in prepared:
                self._prepare(pgconn)
                prepared.add(self.name)
            result = self._exec(pgconn, values)
            if (result.status == pq.ExecStatus.FATAL_ERROR and pgconn.status == pq.ConnStatus.OK
                    and result.error_field(pq.DiagnosticField.SQLSTATE) == UNDEFINED_STATEMENT.encode()):
                self._prepare(pgconn)  # deallocated meanwhile (psycopg does so after a rollback)
                result = self._exec(pgconn, values)
            _check(result, pgconn, pq.ExecStatus.TUPLES_OK)
            convert, make = self.converters(prepared.encoding), self.row
            return [make([None if (value := result.get_value(r, c)) is None else convert[c](value)
                          for c in range(len(convert))]) for r in range(result.ntuples)]

    def _prepare(self, pgconn) -> None:
        _check(pgconn.prepare(self.name, self.sql), pgconn, pq.ExecStatus.COMMAND_OK)

    def _exec(self, pgconn, values: list):
        return pgconn.exec_prepared(self.name, values)


class _Prepared(set):
    """The names prepared on one connection, and its client encoding (a Python codec name)."""
    encoding = "utf-8"


def _first_use(pooled) -> _Prepared:
    driver = pooled.driver_connection
    if not (driver.pgconn.parameter_status(b"DateStyle") or b"ISO").startswith(b"ISO"):
        _check(driver.pgconn.exec_(b"SET DateStyle TO ISO"), driver.pgconn, pq.ExecStatus.COMMAND_OK)
    prepared = pooled.info["motion_prepared"] = _Prepared()
    prepared.encoding = driver.info.encoding
    return prepared


def _check(result, pgconn, expected) -> None:
    """Raise what psycopg would raise for a result that is not ``expected``."""
    if result.status == expected:
        return
    if pgconn.status != pq.ConnStatus.OK:
        raise psycopg.OperationalError(f"the connection to the database was lost: "
                                       f"{pgconn.get_error_message()}")
    sqlstate = result.error_field(pq.DiagnosticField.SQLSTATE)
    try:
        error = psycopg.errors.lookup(sqlstate.decode()) if sqlstate else psycopg.DatabaseError
    except KeyError:
        error = psycopg.DatabaseError
    raise error(result.get_error_message())
