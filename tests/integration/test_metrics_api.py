"""``/metrics``, ``/health`` and ``/ready`` on the API: Prometheus text that its own parser reads,
counters that move when jobs run and requests arrive, the same numbers on PostgreSQL and SQLite."""
from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api import create_app
from orchestrator import expiry, models
from orchestrator.config import Settings
from orchestrator.db import Database
from orchestrator.models import utcnow
from orchestrator.motion import migrate_volume
from orchestrator.runner import Runner
from tests.helpers import admin_caller, ids, load_small


class FakeAgent:
    """A host agent whose commands end at the second look, as ``outcome`` says."""

    def __init__(self, outcome="succeeded"):
        self.outcome = outcome

    def post_command(self, base_url, payload):
        return {"id": payload["id"], "state": "running", "bytesDone": 0, "bytesTotal": 100}

    def get_command(self, base_url, command_id):
        if self.outcome == "failed":
            return {"id": command_id, "state": "failed", "error": "disk on fire"}
        return {"id": command_id, "state": "succeeded", "bytesDone": 100, "bytesTotal": 100,
                "result": {"volumePath": "moved.vhdx"}}

    def abort_command(self, base_url, command_id):
        return {"id": command_id, "state": "aborted"}

    def get_volume(self, base_url, volume_id):
        return None


def samples(text: str) -> dict:
    """{(sample name, ((label, value), ...)): value} of a scrape, read by Prometheus's own parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(scraped: dict, name: str, **labels) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(params=["postgresql", "sqlite"])
def system(request):
    url = request.getfixturevalue("pg_url" if request.param == "postgresql" else "sqlite_url")
    db = Database(url)
    load_small(db)
    enqueued: list[int] = []
    settings = Settings(database_url=url, worker_id="metrics-test", poll_interval=0.0,
                        agent_url="http://agent.invalid/hosts/{host}")
    client = create_app(settings, db, enqueued.append).test_client()
    yield db, client, settings, enqueued
    db.dispose()


def scrape(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.content_type.startswith("text/plain")
    return samples(response.get_data(as_text=True))


def submit(db, volume="vm1-root", pool="c1-gold-2") -> int:
    jobs: list[int] = []
    [vol], [dest] = ids(db, models.Volume, volume), ids(db, models.StoragePool, pool)
    migrate_volume(db, jobs.append, admin_caller(db), vol, dest, True, {})
    return jobs[0]


def test_job_metrics_move_when_jobs_succeed_and_fail(system):
    db, client, settings, _ = system
    before = scrape(client)
    assert value(before, "motion_database_up") == 1
    assert Runner(db, FakeAgent("succeeded"), settings).run(submit(db)) == "succeeded"
    assert Runner(db, FakeAgent("failed"), settings).run(submit(db, "vm2-root", "c1-gold")) == "failed"
    after = scrape(client)
    for status in ("succeeded", "failed"):
        labels = {"command": "migrateVolume", "status": status}
        assert value(after, "motion_jobs", **labels) == value(before, "motion_jobs", **labels) + 1
        assert value(after, "motion_job_duration_seconds_count", **labels) == 1
        assert value(after, "motion_job_duration_seconds_bucket", le="+Inf", **labels) == 1
        assert value(after, "motion_job_run_seconds_count", **labels) == 1
    assert value(after, "motion_migrated_bytes_total", command="migrateVolume") == 100


def test_a_queued_job_shows_in_queue_depth_and_pending_phase(system):
    db, client, _, enqueued = system
    submit(db)
    scraped = scrape(client)
    assert value(scraped, "motion_host_queue_depth", host="h1") == 1
    assert value(scraped, "motion_jobs_pending", command="migrateVolume", phase="queued") == 1
    assert value(scraped, "motion_host_slots_used", host="h1") == 0
    assert value(scraped, "motion_host_slots_limit", host="h1") == 2


def test_job_durations_fall_in_the_right_buckets(system):
    db, client, _, _ = system
    caller = admin_caller(db)
    start = utcnow() - timedelta(hours=1)
    with db.uow() as uow:
        for seconds in (3, 42, 4000):
            uow.session.add(models.AsyncJob(
                account_id=caller.account_id, user_id=caller.user_id, command="migrateVirtualMachine",
                cmd="x", status=1, phase="done", created=start, dispatched_at=start + timedelta(seconds=1),
                completed_at=start + timedelta(seconds=seconds), bytes_done=10))
        uow.commit()
    scraped = scrape(client)
    labels = {"command": "migrateVirtualMachine", "status": "succeeded"}
    buckets = {le: value(scraped, "motion_job_duration_seconds_bucket", le=le, **labels)
               for le in ("1.0", "5.0", "60.0", "3600.0", "7200.0", "+Inf")}
    assert buckets == {"1.0": 0, "5.0": 1, "60.0": 2, "3600.0": 2, "7200.0": 3, "+Inf": 3}
    assert value(scraped, "motion_job_duration_seconds_sum", **labels) == pytest.approx(4045, abs=0.01)
    assert value(scraped, "motion_job_run_seconds_sum", **labels) == pytest.approx(4042, abs=0.01)
    assert value(scraped, "motion_migrated_bytes_total", command="migrateVirtualMachine") == 30


def test_api_requests_are_counted_by_command_and_code(system):
    _, client, _, _ = system
    before = scrape(client)
    client.get("/client/api", query_string={"command": "listZones", "response": "json"})  # unsigned: 401
    client.get("/client/api", query_string={"command": "no-such-command"})
    client.get("/client/api")
    after = scrape(client)
    for command, code in (("listZones", "401"), ("unknown", "432"), ("none", "431")):
        counted = value(after, "motion_api_requests_total", command=command, code=code)
        assert counted == value(before, "motion_api_requests_total", command=command, code=code) + 1
    assert value(after, "motion_api_request_seconds_count", command="listZones") >= 1


def test_health_answers_without_the_database_and_ready_only_with_it(system, tmp_path):
    _, client, _, _ = system
    assert client.get("/health").get_json() == {"status": "ok"}
    assert client.get("/ready").status_code == 200
    dead = Database("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=1")
    broken = create_app(Settings(database_url=dead.url), dead, lambda job_id: None).test_client()
    assert broken.get("/health").status_code == 200
    assert broken.get("/ready").status_code == 503
    scraped = scrape(broken)
    assert value(scraped, "motion_database_up") == 0


def test_expunging_jobs_changes_no_counter_or_histogram_only_the_jobs_in_the_table(system):
    db, client, _, _ = system
    caller = admin_caller(db)

    def finished_jobs(seconds_list, status=1, days_ago=2):
        start = utcnow() - timedelta(days=days_ago)
        with db.uow() as uow:
            for seconds in seconds_list:
                uow.session.add(models.AsyncJob(
                    account_id=caller.account_id, user_id=caller.user_id, command="migrateVirtualMachine",
                    cmd="x", status=status, phase="done", created=start, dispatched_at=start + timedelta(seconds=1),
                    completed_at=start + timedelta(seconds=seconds), bytes_done=10))
            uow.commit()

    finished_jobs((3, 42, 4000))
    finished_jobs((7,), status=2)
    before = scrape(client)
    assert expiry.expire_finished(db) == 4
    finished_jobs((100,), days_ago=0)  # recent: stays in the table, adds to the totals
    after = scrape(client)

    ok, failed = ({"command": "migrateVirtualMachine", "status": s} for s in ("succeeded", "failed"))
    assert value(before, "motion_jobs", **ok) == 3 and value(after, "motion_jobs", **ok) == 1
    assert value(after, "motion_jobs", **failed) == 0
    assert value(before, "motion_jobs_finished_total", **ok) == 3
    assert value(after, "motion_jobs_finished_total", **ok) == 4
    assert value(after, "motion_jobs_finished_total", **failed) == 1
    for name in ("motion_job_duration_seconds", "motion_job_run_seconds"):
        for labels in (ok, failed):
            for le in ("1.0", "5.0", "60.0", "120.0", "3600.0", "7200.0", "+Inf"):
                added = 1 if labels is ok and le in ("120.0", "3600.0", "7200.0", "+Inf") else 0
                assert (value(after, f"{name}_bucket", le=le, **labels)
                        == value(before, f"{name}_bucket", le=le, **labels) + added), (name, labels, le)
    assert value(after, "motion_job_duration_seconds_sum", **ok) == pytest.approx(4045 + 100, abs=0.01)
    assert value(after, "motion_job_run_seconds_sum", **failed) == pytest.approx(6, abs=0.01)
    assert value(after, "motion_migrated_bytes_total", command="migrateVirtualMachine") == 40
