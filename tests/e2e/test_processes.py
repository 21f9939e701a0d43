"""End to end on real parts: gunicorn API, Celery worker on Redis, host agent, PostgreSQL.

Each piece runs as its own process, started the way the Procfile starts it, and the test
drives them over HTTP with the ``cs`` CloudStack client.
"""
import pytest

from tests.e2e.flow import failing_migration_rolls_back, migrate_and_verify

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]


def test_a_volume_migrates_through_api_worker_and_agent_processes(stack):
    assert stack.api.listZones()["count"] >= 1
    migrate_and_verify(stack.api, stack.agent_root)


def test_an_agent_error_leaves_the_volume_ready_on_its_source_pool(stack):
    failing_migration_rolls_back(stack.api, stack.agent_url, stack.agent_root)
