"""The command table: name -> handler, who may call it, and the request context handlers get."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from orchestrator.config import Settings
from orchestrator.db import Database, UnitOfWork
from orchestrator.motion import Caller
from orchestrator.prepared import PreparedRead

from .params import Params


@dataclass
class Context:
    session: Session
    caller: Caller
    params: Params
    db: Database
    enqueue: Callable[[int], None]
    settings: Settings
    reads: Engine | None = None  # for single-statement reads outside the session (``reader``)
    uow: UnitOfWork | None = None  # the request's unit of work, whose session is ``session``

    def read(self, statement, params: dict | None = None) -> list:
        """Run one read-only statement outside the session's transaction; its rows."""
        with (self.reads or reader(self.db)).connect() as conn:
            return conn.execute(statement, params).all()

    def read_fast(self, statement, params: dict) -> list:
        return read_fast(self.db, statement, params, self.reads)


@dataclass(frozen=True)
class Command:
    name: str
    handler: Callable[[Context], dict]
    admin_only: bool


COMMANDS: dict[str, Command] = {}
_PREPARED: dict = {}


def read_fast(db: Database, statement, params: dict, reads: Engine | None = None) -> list:
    """``Context.read`` for the hottest reads: on PostgreSQL the statement, compiled once, runs as
    a libpq prepared statement on a pooled connection (``orchestrator.prepared``), skipping
    SQLAlchemy's and psycopg's execution and result layers; rows have the statement's column
    names as attributes."""
    engine = db.engine
    if engine.dialect.name != "postgresql":
        with (reads or reader(db)).connect() as conn:
            return conn.execute(statement, params).all()
    read = _PREPARED.get(statement)
    if read is None:
        read = _PREPARED[statement] = PreparedRead(statement, engine.dialect)
    return read.run(engine, params)


def reader(db: Database) -> Engine:
    """The engine for single-statement reads of ``db``: on PostgreSQL in autocommit (one statement
    sees one consistent snapshot by itself, and no BEGIN and ROLLBACK round trips are needed);
    elsewhere the engine itself (SQLite's BEGIN IMMEDIATE hook must keep pairing with a rollback)."""
    engine = getattr(db, "_motion_reader", None)
    if engine is None:
        engine = db.engine
        if db.engine.dialect.name == "postgresql":
            engine = db.engine.execution_options(isolation_level="AUTOCOMMIT")
        db._motion_reader = engine
    return engine


def command(name: str, admin_only: bool = False):
    """Register a handler for CloudStack command ``name`` (looked up case-sensitively)."""
    def register(handler):
        COMMANDS[name] = Command(name, handler, admin_only)
        return handler
    return register


def listing(ctx: Context, query, key: str, render: Callable) -> dict:
    """A CloudStack list body: total ``count`` and one page of ``key`` objects; ``{}`` when empty."""
    total = ctx.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    if not total:
        return {}
    paging = ctx.params.paging()
    if paging:
        query = query.offset(paging[0]).limit(paging[1])
    return {"count": total, key: [render(obj) for obj in ctx.session.scalars(query)]}


def like(value: str) -> str:
    return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
