"""Several jobs in flight in one worker process (``motion worker --pool threads``), end to end:
they are really held at once by one process, the per-host limit and the submission order still
hold, and a process killed with several jobs in flight strands them only until their leases
expire - another worker then finishes every one of them, with the data where it is recorded."""
import signal
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.conftest import wait_until
from tests.e2e.test_recovery import assert_data_where_recorded, digest_of, end_of, pool

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]
HERE = Path(__file__).parent
THREE = HERE / "three_hosts.yaml"
BUSY = HERE / "busy_host.yaml"


def submit(api, vols, dest="dst"):
    target = pool(api, dest)["id"]
    return [api.migrateVolume(volumeid=v["id"], storageid=target, livemigrate=True)["jobid"] for v in vols]


def volumes(api):
    return sorted(api.listVolumes(fetch_list=True), key=lambda v: v["name"])


class Jobs:
    """Reads of the job table (what the API does not show: lease owners, dispatch times)."""

    def __init__(self, pg_url):
        self.engine = create_engine(pg_url)

    def rows(self, sql, **params):
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).all()

    def holders(self, jobids):
        """{job uuid: lease owner} of the given jobs dispatched now with a lease."""
        return dict(self.rows("SELECT uuid, lease_owner FROM async_jobs WHERE uuid = ANY(:ids) AND status = 0 "
                              "AND phase = 'dispatched' AND lease_owner IS NOT NULL", ids=list(jobids)))


@pytest.fixture
def jobs(pg_url):
    j = Jobs(pg_url)
    yield j
    j.engine.dispose()


def owner_parts(owner):
    """``ID/PID-N`` (workers.app.Runtime) -> (ID, PID, N)."""
    worker, _, executor = owner.partition("/")
    pid, _, n = executor.partition("-")
    return worker, int(pid), int(n)


def test_one_threads_worker_process_holds_six_jobs_in_flight_at_once(make_stack, jobs):
    # Given one worker process with the threads pool (6 jobs at once) and copies of 8 s (time
    # for all six to be dispatched before the first ends, even on a loaded machine)
    stack = make_stack(inventory=THREE, bandwidth=0.5, pool="threads", concurrency=6)
    api = stack.api
    # When six volumes on three hosts (two per host, the hosts' limit) are migrated
    jobids = submit(api, volumes(api))
    # Then all six are dispatched at the same moment, each under its own lease owner, all of
    # them threads of the one worker process
    held = wait_until(lambda: (lambda h: h if len(h) == 6 else None)(jobs.holders(jobids)), timeout=60,
                      interval=0.05, what="six jobs dispatched at once")
    parts = [owner_parts(owner) for owner in held.values()]
    assert {worker for worker, _, _ in parts} == {"worker0"}
    assert len({pid for _, pid, _ in parts}) == 1, held  # one process ...
    assert len({n for _, _, n in parts}) == 6, held  # ... six runners
    for jobid in jobids:
        assert end_of(api, jobid)["jobstatus"] == 1
    assert all(v["storage"] == "dst" and v["state"] == "Ready" for v in volumes(api))


def test_a_threads_worker_keeps_the_host_limit_and_the_submission_order(make_stack, jobs):
    # Given one worker process that could take 8 jobs at once, and ten volumes on one host whose
    # limit is 2 (copies of 1 s)
    stack = make_stack(inventory=BUSY, bandwidth=4, pool="threads", concurrency=8)
    api = stack.api
    # When all ten are migrated at once
    jobids = submit(api, volumes(api))
    for jobid in jobids:
        assert end_of(api, jobid)["jobstatus"] == 1
    # Then the agent never ran more than 2 at once (the orchestrator kept the limit itself) ...
    status = requests.get(f"{stack.agent_url}/hosts/busy-host", timeout=10).json()
    assert status["peakStorageMigrations"] == 2
    # ... and the jobs were dispatched in the order they were submitted
    order = [r[0] for r in jobs.rows("SELECT uuid FROM async_jobs WHERE uuid = ANY(:ids) ORDER BY dispatched_at",
                                     ids=jobids)]
    submitted = [r[0] for r in jobs.rows("SELECT uuid FROM async_jobs WHERE uuid = ANY(:ids) ORDER BY id",
                                         ids=jobids)]
    assert order == submitted
    assert all(v["storage"] == "dst" and v["state"] == "Ready" for v in volumes(api))


def test_a_threads_worker_killed_with_several_jobs_in_flight_strands_them_until_another_finishes_them(
        make_stack, jobs):
    # Given one worker process with the threads pool and six slow copies (8 s each) under way
    stack = make_stack(inventory=THREE, bandwidth=0.5, pool="threads", concurrency=6)
    api = stack.api
    vols = volumes(api)
    digests = {v["id"]: digest_of(stack, v) for v in vols}
    jobids = submit(api, vols)
    held = wait_until(lambda: (lambda h: h if len(h) >= 4 else None)(jobs.holders(jobids)), timeout=60,
                      interval=0.05, what="several jobs dispatched by worker0")
    assert len({owner_parts(o)[1] for o in held.values()}) == 1  # all in the one process
    # When that process is killed (SIGKILL: no acknowledgement, no lease released) ...
    stack.procs.kill("worker0", signal.SIGKILL)
    # ... its jobs stay as it left them, dispatched under its leases (nobody else may run them
    # before the leases expire) ...
    assert jobs.holders(list(held)) == held
    # ... and another worker is started
    stack.start_worker("worker1")
    # Then every job ends, succeeded, each stranded one claimed again (by worker1, the only
    # worker left) after its lease expired
    for jobid in jobids:
        assert end_of(api, jobid)["jobstatus"] == 1
    resumed = dict(jobs.rows("SELECT uuid, attempt FROM async_jobs WHERE uuid = ANY(:ids)", ids=list(held)))
    assert all(attempt >= 2 for attempt in resumed.values()), resumed
    # And every volume's data is complete on its recorded pool, and only there
    for v in vols:
        assert assert_data_where_recorded(stack, v["id"], digests[v["id"]])["storage"] == "dst"
