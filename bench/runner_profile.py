"""Deterministic costs of the worker's runner per instant volume job, in process: statements,
BEGIN/COMMIT round trips, pool checkouts and pings, and CPU per job, on a fresh PostgreSQL
database with the same generated inventory as ``bench/pipeline.py``.

The jobs are submitted through the API app in process (as ``bench/api_profile.py`` does), then
``Runner.run`` drives each with an agent that answers every command with its success at once (as
the zero-copy agent does with ``?wait=``), so only the runner's own work is measured: no Celery,
no HTTP. CPU is this process's (``time.process_time``) and the PostgreSQL backends' per job.
``--profile cprofile|pyinstrument`` writes a profile of the measured jobs to ``--out``.

    python bench/runner_profile.py --redis-url redis://127.0.0.1:6379/9
    python bench/runner_profile.py --jobs 300 --profile pyinstrument --out /tmp/runner
"""
from __future__ import annotations

import os
import sys

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402

from bench import _common as c  # noqa: E402
from bench import _stack  # noqa: E402
from bench.api_profile import Counts, new_profiler, save_profile  # noqa: E402


class InstantAgent:
    """Every command has succeeded by the time it is posted."""

    def post_command(self, base_url: str, payload: dict) -> dict:
        return {"id": payload["id"], "state": "succeeded", "bytesDone": 65536, "bytesTotal": 65536,
                "rate": 0, "eta": 0.0, "error": None, "result": {"volumePath": f"{payload['id']}.vhdx"}}

    def get_command(self, base_url: str, command_id: str) -> dict:
        raise AssertionError("an instant command is finished with the answer to its POST")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500, help="jobs to run (default 500)")
    parser.add_argument("--profile", choices=["none", "cprofile", "pyinstrument"], default="none")
    parser.add_argument("--loglevel", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log level while measuring (WARNING, as the "
                        "benchmarks run their workers)")
    parser.add_argument("--out", default="/tmp/motion-runner-profile", help="profile output prefix")
    c.add_service_arguments(parser)
    args = parser.parse_args(argv)
    c.header(f"runner_profile: {args.jobs} instant volume jobs in process")
    services = c.Services(args.database_url, args.redis_url)
    app = runtime = None
    try:
        from api import create_app
        from orchestrator.config import Settings
        from orchestrator.runner import Runner
        from workers.app import Runtime

        _stack.load(services.database_url, _stack.inventory(16, 4, max(1, args.jobs // 128 + 1), 1, "64KiB"))
        key = c.create_admin_key(services.database_url)
        settings = Settings(database_url=services.database_url, broker_url=services.redis_url,
                            worker_id="profile")
        app = create_app(settings)
        logging.getLogger().setLevel(args.loglevel)  # the bench's workers run at WARNING
        client = app.test_client()
        for m in _stack.moves(services)[:args.jobs + 20]:
            query = c.signed_query({"command": "migrateVolume", "volumeid": m.volume, "storageid": m.dest,
                                    "livemigrate": "true"}, key["apikey"], key["secretkey"])
            assert client.get(f"/client/api?{query}").status_code == 200
        ids = [j for (j,) in services.sql("select id from async_jobs where status = 0 order by id")]
        # what autovacuum does after the submissions (as bench/api.py's ``analyze``): without it
        # every admission is planned for the empty table of the start and reads all queued jobs
        services.sql("vacuum analyze async_jobs")
        runtime = Runtime(settings)  # the worker's database options
        runner = Runner(runtime.db, InstantAgent(), settings, owner="profile/1")
        for job_id in ids[:20]:  # warm-up: imports, pools, caches
            assert runner.run(job_id) == "succeeded"
        measured = ids[20:]
        counts = Counts(runtime.db.engine)
        profiler = new_profiler(args.profile)
        pg_pids = _stack.postgres_pids(services)
        counts.take()
        pg0, cpu0, wall0 = _stack.cpu_seconds(pg_pids), time.process_time(), time.perf_counter()
        if profiler is not None:
            profiler.start()
        outcomes = Counter(runner.run(job_id) for job_id in measured)
        if profiler is not None:
            profiler.stop()
        n = len(measured)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        pg = _stack.cpu_seconds(pg_pids) - pg0
        per = ", ".join(f"{k} {v / n:g}" for k, v in sorted(counts.take().items()))
        print(f"  {n} jobs {dict(outcomes)}: worker CPU {1000 * cpu / n:.2f} ms, PostgreSQL CPU "
              f"{1000 * pg / n:.2f} ms, wall {1000 * wall / n:.2f} ms per job")
        print(f"  per job: {per}")
        if profiler is not None:
            print(f"  profile: {save_profile(profiler, args.profile, args.out)}")
        return 0 if set(outcomes) == {"succeeded"} else 1
    finally:
        if runtime is not None and runtime._db is not None:
            runtime.db.dispose()
        if app is not None:
            app.config["MOTION_DB"].dispose()
        services.close()


if __name__ == "__main__":
    sys.exit(main())
