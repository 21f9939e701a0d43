"""Every call that changes something leaves an event naming its caller.

While a command runs, listeners on the database's sessions note whether anything was written
(ORM flushes, INSERT/UPDATE/DELETE statements) and whether an ``Event`` was among the writes.
Commands that record their own events (the migrations' Scheduled event, ``login``, ``logout``)
are left alone; for any other call that wrote something, an ``API.<command>`` event is added
once the call has succeeded, with the caller's account and user and the parameters it passed
(credentials left out). Reads write nothing and are not recorded. Other threads using the same
database (the embedded worker) are not tracked: the flag lives in a context variable.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from sqlalchemy import event

from orchestrator.db import Database
from orchestrator.models import Event
from orchestrator.motion import Caller

PLAIN = re.compile(r"^[A-Za-z0-9._:@+\-\[\]]{0,100}\Z")
# Never written into an event description.
HIDDEN = frozenset({"command", "response", "apikey", "signature", "signatureversion", "expires",
                    "sessionkey", "password", "secretkey", "currentpassword", "newpassword"})


@dataclass
class Tracker:
    caller: Caller | None = None  # set once the caller is known
    changed: bool = False
    evented: bool = False


_current: ContextVar[Tracker | None] = ContextVar("motion_audit", default=None)


def _before_flush(session, _context, _instances) -> None:
    tracker = _current.get()
    if tracker is None:
        return
    if session.new or session.dirty or session.deleted:
        tracker.changed = True
    if any(isinstance(obj, Event) for obj in session.new):
        tracker.evented = True


def _on_execute(state) -> None:
    tracker = _current.get()
    if tracker is None or not (state.is_insert or state.is_update or state.is_delete):
        return
    tracker.changed = True
    # ``insert(Event)`` carries an annotated copy of the table: compare names, not identity.
    if state.is_insert and getattr(getattr(state.statement, "table", None), "name", None) == Event.__tablename__:
        tracker.evented = True


def install(db: Database) -> None:
    """Watch the sessions of ``db`` (once per database)."""
    if getattr(db.sessions, "_motion_audit", False):
        return
    event.listen(db.sessions, "before_flush", _before_flush)
    event.listen(db.sessions, "do_orm_execute", _on_execute)
    db.sessions._motion_audit = True


@contextmanager
def tracking(db: Database, command: str, params: dict[str, str]):
    """Run a command; afterwards record an event if it changed something and recorded none.

    The event is written after the command's own unit of work has closed (on SQLite a second
    writer would wait for it), so the ``with db.uow()`` of the command goes inside this one.
    """
    tracker = Tracker()
    token = _current.set(tracker)
    try:
        yield tracker
    finally:
        _current.reset(token)
    caller = tracker.caller
    if tracker.changed and not tracker.evented and caller is not None:
        with db.uow() as uow:
            uow.session.add(Event(type=f"API.{command}", state="Completed", level="INFO",
                                  description=describe(command, params),
                                  account_id=caller.account_id, user_id=caller.user_id))
            uow.commit()


def describe(command: str, params: dict[str, str]) -> str:
    """``command: name=value, ...``; values other than plain words and ids are shown by length
    only, so an event never carries a caller's markup, paths or SQL into a UI or a report."""
    shown = [f"{name}={value if PLAIN.match(value) and '..' not in value else f'<{len(value)} characters>'}"
             for name, value in sorted(params.items()) if name not in HIDDEN and PLAIN.match(name)]
    return (f"{command}: " + ", ".join(shown))[:4000]
