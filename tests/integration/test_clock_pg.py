"""The clock check of workers and beat (orchestrator.clock) against a real PostgreSQL server."""
from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from orchestrator import clock
from orchestrator.db import Database
from orchestrator.models import utcnow

pytestmark = pytest.mark.postgres


@pytest.fixture
def db(pg_url):
    database = Database(pg_url)
    yield database
    database.dispose()


def test_a_clock_in_step_with_the_server_passes_quietly(db, caplog):
    with caplog.at_level(logging.WARNING, logger="orchestrator.clock"):
        skew = clock.check(db, "worker")
    assert abs(skew) < clock.LIMIT and caplog.records == []


@pytest.mark.parametrize("offset, word", [(90, "ahead of"), (-90, "behind")])
def test_a_clock_off_by_more_than_the_limit_is_warned_about(db, caplog, offset, word):
    skewed = lambda: utcnow() + timedelta(seconds=offset)  # noqa: E731
    with caplog.at_level(logging.WARNING, logger="orchestrator.clock"):
        skew = clock.check(db, "beat", clock=skewed)
    assert abs(skew - offset) < 1
    [line] = caplog.records
    assert f"beat: this machine's clock is {abs(offset)}" in line.getMessage() and word in line.getMessage()


def test_sqlite_shares_this_machine_s_clock(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/m.db")
    try:
        assert clock.check(db, "worker") is None
    finally:
        db.dispose()
