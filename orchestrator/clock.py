"""How far this machine's clock is from the database server's.

Leases, deadlines and the sweep's quiet periods are written by one machine's clock and read by
another's (workers on several machines, beat, the API). Clocks kept in step (NTP) make that
safe; a clock that is ahead makes a worker take over a job whose lease has not run out for its
holder, and time a job out before its deadline. Workers and beat measure the gap when they
start and warn above ``LIMIT`` seconds.
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Callable

from sqlalchemy import text

from .db import Database
from .models import utcnow

log = logging.getLogger(__name__)

LIMIT = 2.0  # seconds: well inside a lease (MOTION_LEASE_SECONDS, 30) and the sweep's 15 s


def skew_seconds(db: Database, clock: Callable[[], datetime] = utcnow) -> float | None:
    """This machine's UTC time minus the database server's, in seconds, the query's round trip
    halved out; None on SQLite (the database's clock is this machine's)."""
    if db.url.startswith("sqlite"):
        return None
    with db.engine.connect() as conn:
        before = clock()
        server = conn.execute(text("SELECT clock_timestamp() AT TIME ZONE 'UTC'")).scalar_one()
        after = clock()
    return ((before + (after - before) / 2) - server).total_seconds()


def check(db: Database, process: str, clock: Callable[[], datetime] = utcnow) -> float | None:
    """Measure the skew and warn when it is above ``LIMIT``; the skew (None on SQLite)."""
    skew = skew_seconds(db, clock)
    if skew is not None and abs(skew) > LIMIT:
        log.warning("%s: this machine's clock is %.1f s %s the database server's; leases and deadlines "
                    "are compared across machines, so keep their clocks in step (NTP)",
                    process, abs(skew), "ahead of" if skew > 0 else "behind")
    return skew
