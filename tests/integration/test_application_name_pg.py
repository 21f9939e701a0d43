"""Each process names its PostgreSQL connections (``application_name``), so that an operator can
tell in ``pg_stat_activity`` and the server's log which process holds which connection; a name
given in the database URL wins."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from api.app import create_app
from orchestrator.config import Settings
from orchestrator.db import Database
from workers.app import Runtime

pytestmark = pytest.mark.postgres


def application_name(db: Database) -> str:
    with db.engine.connect() as conn:
        return conn.execute(text("select current_setting('application_name')")).scalar_one()


def test_the_api_and_the_worker_name_their_connections(pg_url):
    app = create_app(Settings(database_url=pg_url), enqueue=lambda job_id: None)
    runtime = Runtime(Settings(database_url=pg_url))
    try:
        assert application_name(app.config["MOTION_DB"]) == "motion-api"
        assert application_name(runtime.db) == "motion-worker"
    finally:
        app.config["MOTION_DB"].dispose()
        runtime.db.dispose()


def test_a_name_in_the_url_is_kept(pg_url):
    db = Database(pg_url + "?application_name=ops-tool", application_name="motion-cli")
    try:
        assert application_name(db) == "ops-tool"
    finally:
        db.dispose()


def test_without_a_name_the_driver_default_holds(pg_url):
    db = Database(pg_url)
    try:
        assert application_name(db) == ""
    finally:
        db.dispose()
