"""Engines, sessions and the unit of work.

Only the service layer commits, explicitly; leaving a unit of work without commit rolls back.
After-commit hooks (used to enqueue jobs) run only once the commit has succeeded. Every state
change goes through ``cas``: one conditional UPDATE whose row count says who won.
"""
from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache
from typing import Callable

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy import bindparam, create_engine, event, insert, update
from sqlalchemy.exc import DBAPIError, MultipleResultsFound, NoResultFound
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from .errors import ConcurrentOperation


# PostgreSQL states that mean the server, not the statement: shutting down (by an administrator
# or after a crash), starting up or recovering, out of connection slots; and class 08, connection.
_OUTAGE_STATES = ("57P01", "57P02", "57P03", "53300")
_SQLITE_OUTAGES = ("database is locked", "unable to open database file", "disk I/O error")


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` is the database failing for the moment rather than a statement's fault: a
    connection refused, lost or dropped, a server shutting down, starting or out of connection
    slots; SQLite locked or unreadable. A deadlock, a timeout, a constraint or bad SQL is not:
    those are bugs to log with their traceback."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig
    import sqlite3

    import psycopg

    if isinstance(exc, psycopg.OperationalError):
        state = exc.sqlstate  # None: the client's own (connection refused, closed)
        return state is None or state.startswith("08") or state in _OUTAGE_STATES
    if isinstance(exc, sqlite3.OperationalError):
        return any(text in str(exc) for text in _SQLITE_OUTAGES)
    return False


def first_line(exc: BaseException) -> str:
    """A driver error in one line: its class and the first line of its text (which runs on to the
    SQL and the parameters), for a log line without a traceback."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {text[0] if text else ''}"[:300]


def make_engine(url: str, application_name: str | None = None, **kwargs) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and foreign keys. On PostgreSQL,
    ``application_name`` names the process's connections in ``pg_stat_activity`` and the server's
    log (``motion-api``, ``motion-worker``, ...), unless the URL names them itself."""
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": 30, "check_same_thread": False})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        # pysqlite's own transaction handling defers BEGIN; take the write lock at BEGIN so
        # that two writers serialise instead of failing on lock upgrade.
        @event.listens_for(engine, "connect")
        def _no_autobegin(dbapi_conn, _record):  # pragma: no cover - trivial
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn):  # pragma: no cover - trivial
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    ping_idle = kwargs.pop("ping_idle_seconds", None)
    kwargs.setdefault("pool_pre_ping", ping_idle is None)
    if application_name and "application_name=" not in url:
        kwargs["connect_args"] = {"application_name": application_name, **kwargs.get("connect_args", {})}
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 5)
    engine = create_engine(url, **kwargs)
    if ping_idle is not None:
        _ping_when_idle(engine, ping_idle)
    return engine


def _ping_when_idle(engine: Engine, seconds: float) -> None:
    """Ping a pooled connection at checkout only when it has been idle for ``seconds`` or more.

    ``pool_pre_ping`` costs a round trip on every checkout; a busy API process takes a connection
    back within milliseconds of returning it, when a ping tells nothing new. After a quiet spell
    (when a restarted or failed-over database would go unnoticed) the connection is pinged, and a
    dead one is replaced before use. A connection that dies while in use fails its request; the
    pool then replaces every connection older than that failure (SQLAlchemy's pool invalidation),
    so after a database restart under load each process fails at most the requests it had under
    way plus one.
    """
    import time

    from sqlalchemy.exc import DisconnectionError

    @event.listens_for(engine.pool, "checkin")
    def _idle_from(_dbapi_conn, record):
        if record is not None:
            record.info["motion_idle_since"] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _ping_if_idle(dbapi_conn, record, _proxy):
        since = record.info.get("motion_idle_since")
        if since is None or time.monotonic() - since < seconds:
            return  # a new connection, or one in use moments ago
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # the pool retries the checkout with a new connection
            raise DisconnectionError(f"connection idle {time.monotonic() - since:.0f} s failed its ping") from exc


def driver_execute(engine: Engine, sql: str, params: dict | None = None, row_factory=None) -> list | None:
    """Run one statement (PostgreSQL) on a pooled connection's psycopg cursor, in autocommit; its
    rows (``row_factory``: psycopg's, e.g. ``namedtuple_row``), or None when it returns none.

    For the hottest single statements: SQLAlchemy's connection, execution and result layers cost
    more CPU than the database's answer to a primary-key read. The connection is lent by the
    engine's pool as any other (pinged when idle, see ``_ping_when_idle``) and goes back as lent
    (not in autocommit). A lost connection is handled as SQLAlchemy handles one: the pool
    replaces it and every connection older than the failure. No SQLAlchemy statement events fire.
    """
    with lent(engine) as pooled:
        driver = pooled.driver_connection
        driver.autocommit = True  # one statement: no BEGIN and ROLLBACK/COMMIT round trips
        try:
            with driver.cursor(row_factory=row_factory) if row_factory else driver.cursor() as cursor:
                cursor.execute(sql, params)
                # (``rownumber``, not ``description``: that builds a column object per column.)
                return cursor.fetchall() if cursor.rownumber is not None else None
        finally:
            if not driver.closed:
                driver.autocommit = False


@contextmanager
def lent(engine: Engine):
    """A pooled connection for statements run on the driver (``driver_execute``,
    ``prepared.PreparedRead``), given back afterwards. A lost connection is handled as SQLAlchemy
    handles one: the pool replaces it and every connection older than the failure; the error is
    raised."""
    pooled = engine.raw_connection()
    try:
        yield pooled
    except psycopg.OperationalError as exc:
        if engine.dialect.is_disconnect(exc, pooled, None):
            engine.pool._invalidate(pooled, exc)  # what a SQLAlchemy Connection does on a disconnect
        else:
            pooled.invalidate(exc)
        raise
    finally:
        pooled.close()


_INSERTS_TOGETHER: dict = {}


def insert_together(conn, rows: list[tuple]) -> None:
    """INSERT one row into each of several tables in one statement and one round trip
    (PostgreSQL: the first rows in data-modifying WITHs, the last one the statement itself).

    ``rows``: ``(table, values)`` in order. Each row gets the model's Python-side column defaults
    for what ``values`` leaves out, as an ``insert()`` would; the rows may name each other by
    ids reserved beforehand (foreign keys are checked at the end of the statement). The
    statement is built once per shape.
    """
    complete = [(table, with_defaults(table, values)) for table, values in rows]
    key = tuple((table.name, tuple(sorted(values))) for table, values in complete)
    statement = _INSERTS_TOGETHER.get(key)
    if statement is None:
        parts = [insert(table).values({name: bindparam(f"{table.name}__{name}", type_=table.c[name].type)
                                       for name in values}) for table, values in complete]
        statement = parts[-1].add_cte(*[part.cte(f"insert_{n}") for n, part in enumerate(parts[:-1])])
        _INSERTS_TOGETHER[key] = statement
    conn.execute(statement, {f"{table.name}__{name}": value for table, values in complete
                             for name, value in values.items()})


def with_defaults(table, values: dict) -> dict:
    """``values`` with ``table``'s Python-side column defaults for the columns it leaves out, as
    an ``insert()`` fills them in."""
    complete = dict(values)
    for column in table.columns:
        if column.name not in complete and column.default is not None:
            default = column.default
            complete[column.name] = default.arg if default.is_scalar else default.arg(None)
    return complete


_DRIVER_SQL: dict = {}


def driver_sql(statement, dialect) -> tuple[str, dict]:
    """``statement``'s SQL for ``dialect`` and the values of its literal parameters (``status =
    0`` binds a 0), compiled once, for running on the driver with the caller's parameters added.
    Its other parameters must be plain bound names (no expanding ``IN``, no type processing)."""
    key = (statement, dialect.name)
    found = _DRIVER_SQL.get(key)
    if found is None:
        compiled = statement.compile(dialect=dialect)
        if any(p.expanding or p.type._cached_bind_processor(dialect) for p in compiled.binds.values()):
            raise ValueError("driver_sql takes statements without expanding or processed parameters")
        found = _DRIVER_SQL[key] = (compiled.string, {name: p.value for p, name in compiled.bind_names.items()
                                                      if not p.required})
    return found


def plain_sql(statement, dialect) -> str:
    """``statement``'s SQL for ``dialect``, compiled once (``driver_sql``), for
    ``driver_execute``. Its parameters must be plain bound names that the caller passes (no
    literal values, no expanding ``IN``, nothing for SQLAlchemy's type processing)."""
    sql, defaults = driver_sql(statement, dialect)
    if any(value is not None for value in defaults.values()):
        raise ValueError("plain_sql takes statements with plain parameters only")
    return sql


class Rows:
    """A statement's answer as ``fast_execute`` gives it on PostgreSQL: the parts of SQLAlchemy's
    ``Result`` the hot paths use (rows with attribute access, ``rowcount``)."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list, rowcount: int):
        self._rows, self.rowcount = rows, rowcount

    def first(self):
        return self._rows[0] if self._rows else None

    def one(self):
        if len(self._rows) != 1:
            raise (NoResultFound if not self._rows else MultipleResultsFound)(
                f"expected one row, the statement returned {len(self._rows)}")
        return self._rows[0]

    def all(self) -> list:
        return list(self._rows)

    def __iter__(self):
        return iter(self._rows)


def fast_execute(session: Session, statement, params: dict):
    """Run a Core statement on the session's connection, inside its transaction. On PostgreSQL
    the statement is compiled once (``driver_sql``) and run on the psycopg cursor, skipping
    SQLAlchemy's per-execution work (cache key, parameter and result processing, a column
    object per result column), which cost the workers more CPU than the database's answers; a
    driver error is raised as SQLAlchemy raises it (``DBAPIError``, the connection invalidated
    when it was lost). Elsewhere it is ``session.connection().execute``. Flushes nothing."""
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        return conn.execute(statement, params)
    sql, defaults = driver_sql(statement, conn.dialect)
    values = {**defaults, **params} if defaults else params
    try:
        with conn.connection.driver_connection.cursor(row_factory=namedtuple_row) as cursor:
            cursor.execute(sql, values)
            rows = cursor.fetchall() if cursor.rownumber is not None else []
            return Rows(rows, cursor.rowcount)
    except psycopg.Error as exc:
        lost = conn.dialect.is_disconnect(exc, conn.connection, None)
        if lost:
            conn.invalidate(exc)
        raise DBAPIError.instance(sql, values, exc, psycopg.Error, connection_invalidated=lost,
                                  dialect=conn.dialect) from exc


class Database:
    """An engine and its session factory; ``uow()`` opens a unit of work."""

    def __init__(self, url: str, **engine_kwargs):
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def uow(self) -> "UnitOfWork":
        return UnitOfWork(self.sessions)

    def dispose(self) -> None:
        self.engine.dispose()


class UnitOfWork:
    """``with db.uow() as uow: ...; uow.commit()`` - no commit, no change."""

    def __init__(self, sessions: sessionmaker):
        self._sessions = sessions
        self._after_commit: list[Callable[[], None]] = []
        self.session: Session

    def __enter__(self) -> "UnitOfWork":
        self.session = self._sessions()
        return self

    def __exit__(self, *exc) -> None:
        self.session.rollback()
        self.session.close()

    def after_commit(self, hook: Callable[[], None]) -> None:
        self._after_commit.append(hook)

    def commit(self) -> None:
        self.session.commit()
        hooks, self._after_commit = self._after_commit, []
        for hook in hooks:
            hook()


@lru_cache(maxsize=256)
def _cas_statement(model, shape: tuple[tuple[str, bool], ...], changes: tuple[str, ...]):
    stmt = update(model).where(model.id == bindparam("cas_id"))
    for column, is_none in shape:
        attribute = getattr(model, column)
        stmt = stmt.where(attribute.is_(None) if is_none else attribute == bindparam(f"cas_x_{column}"))
    return stmt.values({c: bindparam(f"cas_v_{c}") for c in changes})


def cas(session: Session, model, row_id: int, expected: dict, changes: dict, what: str = "") -> None:
    """Compare-and-set one row: apply ``changes`` only if the row still has ``expected`` values.

    Raises ConcurrentOperation (and changes nothing) when another writer got there first.
    The statement is built once per model and set of columns (building it cost more than running
    it) and runs on the session's connection, after flushing what the session holds.
    """
    shape = tuple((column, value is None) for column, value in expected.items())
    params = {"cas_id": row_id, **{f"cas_x_{c}": v for c, v in expected.items() if v is not None},
              **{f"cas_v_{c}": v for c, v in changes.items()}}
    session.flush()
    result = fast_execute(session, _cas_statement(model, shape, tuple(changes)), params)
    if result.rowcount != 1:
        raise ConcurrentOperation(
            f"{what or model.__name__} {row_id} is no longer in the expected state {expected}"
        )
