"""The worker's per-process runtime under Celery's threads pool, and ``motion worker --pool``."""
import argparse
import os
import threading

import pytest
from celery import signals

from motion.cli import build_parser
from motion.process_cli import _worker_child_argv
from orchestrator.config import Settings
from workers.app import Runtime, create_celery


def settings(tmp_path, **kw):
    return Settings(database_url=f"sqlite:///{tmp_path}/motion.db", broker_url="memory://", worker_id="w1", **kw)


def runners_of_threads(runtime, count):
    """``runtime.runner`` as seen by ``count`` threads started together."""
    start, seen = threading.Barrier(count), [None] * count

    def look(i):
        start.wait()
        seen[i] = runtime.runner
    threads = [threading.Thread(target=look, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return seen


def test_each_thread_gets_its_own_runner_agent_client_and_lease_owner_over_one_database(tmp_path):
    runtime = Runtime(settings(tmp_path))
    runners = runners_of_threads(runtime, 8)
    assert len({id(r) for r in runners}) == 8
    assert len({id(r.agent) for r in runners}) == 8
    assert len({r.me for r in runners}) == 8  # two threads never hold one lease
    assert {r.me.rsplit("-", 1)[0] for r in runners} == {f"w1/{os.getpid()}"}
    assert len({id(r.db) for r in runners}) == 1  # one engine, built once although asked at once
    assert all(r.stopping is runtime.stopping for r in runners)
    assert runtime.runner is runtime.runner  # the same thread keeps its runner


def test_stopping_the_runtime_stops_every_runner(tmp_path):
    runtime = Runtime(settings(tmp_path))
    runners = runners_of_threads(runtime, 3)
    runtime.stopping.set()
    assert all(r.stopping.is_set() for r in runners)


def test_the_threads_pool_sizes_the_engine_for_a_connection_per_job_in_flight():
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"  # the engine does not connect until used
    app = create_celery(Settings(database_url=url, broker_url="memory://"))
    runtime = app.motion_runtime

    class Worker:  # what Celery's WorkController tells worker_init
        def __init__(self, pool_cls, concurrency):
            self.app, self.pool_cls, self.concurrency = app, pool_cls, concurrency

    signals.worker_init.send(sender=Worker("prefork", 4))
    assert runtime.executors == 1  # a prefork child runs one job
    signals.worker_init.send(sender=Worker("threads", 12))
    assert runtime.executors == 12
    assert runtime.db.engine.pool.size() == 13  # and one for the sweep
    runtime.db.dispose()


def test_a_worker_of_another_app_does_not_size_this_one():
    app = create_celery(Settings(database_url="sqlite://", broker_url="memory://"))
    other = create_celery(Settings(database_url="sqlite://", broker_url="memory://"))
    signals.worker_init.send(sender=type("W", (), {"app": other, "pool_cls": "threads", "concurrency": 9})())
    assert app.motion_runtime.executors == 1 and other.motion_runtime.executors == 9


def worker_args(*argv):
    return build_parser().parse_args(["worker", *argv])


def test_motion_worker_runs_its_child_with_the_pool_and_the_pool_s_default_concurrency():
    def option(argv, name):
        return argv[argv.index(name) + 1]
    prefork = _worker_child_argv(worker_args())
    assert (option(prefork, "--pool"), option(prefork, "--concurrency")) == ("prefork", "2")
    threads = _worker_child_argv(worker_args("--pool", "threads"))
    assert (option(threads, "--pool"), option(threads, "--concurrency")) == ("threads", "8")
    chosen = _worker_child_argv(worker_args("--pool", "threads", "--concurrency", "3"))
    assert option(chosen, "--concurrency") == "3"


class RecordingRunner:
    def __init__(self):
        self.ran = []

    def run(self, job_id):
        self.ran.append(job_id)
        return "succeeded"


def test_two_apps_in_one_process_each_run_jobs_with_their_own_runtime():
    # Celery installs a shared task in every app made after it, the first one winning: the
    # tasks of create_celery are the app's own, so each app's worker uses its own runtime
    first = create_celery(Settings(database_url="sqlite://", broker_url="memory://"))
    second = create_celery(Settings(database_url="sqlite://", broker_url="memory://"))
    runners = {}
    for name, app in (("first", first), ("second", second)):
        runners[name] = app.motion_runtime._local.runner = RecordingRunner()  # this thread's runner
    first.tasks["motion.run_job"](1)
    second.tasks["motion.run_job"](2)
    assert (runners["first"].ran, runners["second"].ran) == ([1], [2])


def test_a_job_run_during_a_database_outage_ends_in_one_warning_and_is_left_to_the_sweep(caplog):
    # The engine points at a port where no server listens: every connection is refused
    app = create_celery(Settings(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none",
                                 broker_url="memory://", agent_timeout=1.0))
    from workers import metrics as worker_metrics

    before = worker_metrics.JOB_RUNS.labels("db-unavailable")._value.get()
    with caplog.at_level("WARNING", logger="workers.app"):
        assert app.tasks["motion.run_job"](7) == "db-unavailable"
    [line] = [r for r in caplog.records if r.name == "workers.app"]
    assert "job 7: the database is unavailable" in line.getMessage() and line.exc_info is None
    assert worker_metrics.JOB_RUNS.labels("db-unavailable")._value.get() == before + 1


def test_a_bug_in_a_job_run_still_raises():
    app = create_celery(Settings(database_url="sqlite://", broker_url="memory://"))

    class Broken:
        def run(self, job_id):
            raise KeyError("a bug")
    app.motion_runtime._local.runner = Broken()
    with pytest.raises(KeyError):  # a bug must not pass for an outage
        app.tasks["motion.run_job"](3)
