"""Fixtures shared by the integration tests."""
import pytest

from orchestrator.db import Database
from tests.helpers import load_small


@pytest.fixture
def db(pg_url):
    """A fresh PostgreSQL database with the small inventory (tests/small_inventory.yaml)."""
    database = Database(pg_url)
    load_small(database)
    yield database
    database.dispose()
