"""Fixtures shared by the integration tests."""
import pytest

from api import create_app
from orchestrator.config import Settings
from orchestrator.db import Database
from tests.helpers import Api, load_small, small_with_keys


@pytest.fixture
def db(pg_url):
    """A fresh PostgreSQL database with the small inventory (tests/small_inventory.yaml)."""
    database = Database(pg_url)
    load_small(database)
    yield database
    database.dispose()


@pytest.fixture
def env(pg_url):
    """The API app on a fresh PostgreSQL database with the small inventory: ``db``, signed callers
    ``admin``, ``user`` and ``anon`` (unsigned), and ``enqueued`` (the job ids it published).
    Modules with an ``env`` of their own use theirs."""
    db, admin, user = small_with_keys(pg_url)
    enqueued = []
    app = create_app(Settings(database_url=pg_url), db, enqueued.append)
    client = app.test_client()
    yield {"db": db, "admin": Api(client, admin), "user": Api(client, user),
           "anon": Api(client, None), "enqueued": enqueued}
    db.dispose()
