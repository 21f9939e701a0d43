"""Deterministic costs of the API's two hot requests, in process: statements, transactions, pool
checkouts and pings, and CPU per request, for signed ``migrateVolume`` submissions and
``queryAsyncJobResult`` polls through the Flask app called as gunicorn calls it (no HTTP, no load
generator), on a fresh PostgreSQL database with the same generated inventory as ``bench/api.py``
and the real Celery enqueuer on ``--redis-url``.

CPU is this process's (``time.process_time``) and the PostgreSQL backends' (from /proc) per
request. ``--profile cprofile|pyinstrument`` writes a profile of the measured requests to
``--out``. These figures move little with the machine's load, unlike requests/s.

    python bench/api_profile.py --redis-url redis://127.0.0.1:6379/9
    python bench/api_profile.py --requests 300 --profile pyinstrument --out /tmp/api.html
"""
from __future__ import annotations

import os
import sys

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402

from sqlalchemy import event  # noqa: E402
from werkzeug.test import EnvironBuilder  # noqa: E402

from bench import _common as c  # noqa: E402
from bench import _stack  # noqa: E402


class Counts:
    """Statements (by first word) sent by psycopg cursors (SQLAlchemy's, and those the API runs on
    the driver directly: ``db.driver_execute``), psycopg's own BEGIN/COMMIT/ROLLBACK round trips,
    and pool checkouts and pings on one engine."""

    def __init__(self, engine):
        self.counter: Counter = Counter()
        self.pinging = False
        import psycopg

        execute, counts = psycopg.Cursor.execute, self

        def counted_execute(cursor, query, *args, **kwargs):
            counts._statement(query if isinstance(query, str) else str(query))
            return execute(cursor, query, *args, **kwargs)
        psycopg.Cursor.execute = counted_execute
        event.listen(engine.pool, "checkout", lambda *a: self.counter.update(["checkout"]))
        dialect = engine.dialect
        ping = dialect.do_ping

        def counted_ping(conn):
            self.counter.update(["ping"])
            self.pinging = True  # its SELECT 1 is a ping, not a statement
            try:
                return ping(conn)
            finally:
                self.pinging = False
        dialect.do_ping = counted_ping

        import psycopg._connection_base as base

        original, counter = base.BaseConnection._exec_command, self

        def counted_command(conn, command, *args, **kwargs):
            text = command.decode() if isinstance(command, bytes) else str(command)
            counter.counter.update([text.split(None, 1)[0].upper()])
            return original(conn, command, *args, **kwargs)
        base.BaseConnection._exec_command = counted_command

    def _statement(self, statement: str):
        if self.pinging:
            return
        words = statement.lstrip().split(None, 1)
        self.counter.update(["statements", words[0].upper() if words else "?"])

    def take(self) -> Counter:
        out, self.counter = self.counter, Counter()
        return out


def measure(app, urls: list[str], counts: Counts, pg_pids: list[int], profiler=None) -> dict:
    # WSGI environs built beforehand and the app called directly, as gunicorn calls it: the test
    # client's own request building would otherwise be a third of a poll's CPU.
    environs = [EnvironBuilder(path=url.partition("?")[0], query_string=url.partition("?")[2]).get_environ()
                for url in urls]
    counts.take()
    pg0, cpu0, wall0 = _stack.cpu_seconds(pg_pids), time.process_time(), time.perf_counter()
    if profiler is not None:
        profiler.start()
    statuses = Counter()
    for environ in environs:
        status = []
        body = app(dict(environ), lambda line, headers, *exc: status.append(line))
        b"".join(body)
        getattr(body, "close", lambda: None)()
        statuses[int(status[0].split()[0])] += 1
    if profiler is not None:
        profiler.stop()
    cpu, wall, pg = time.process_time() - cpu0, time.perf_counter() - wall0, _stack.cpu_seconds(pg_pids) - pg0
    n = len(urls)
    got = counts.take()
    return {"n": n, "statuses": dict(statuses), "cpu_ms": 1000 * cpu / n, "pg_cpu_ms": 1000 * pg / n,
            "wall_ms": 1000 * wall / n, "per_request": {k: v / n for k, v in sorted(got.items())}}


def new_profiler(kind: str):
    """A profiler with ``start()``/``stop()``: cProfile timing CPU (not waits), pyinstrument
    sampling every 0.5 ms; None for "none"."""
    if kind == "cprofile":
        import cProfile

        profiler = cProfile.Profile(time.process_time)
        profiler.start, profiler.stop = profiler.enable, profiler.disable
        return profiler
    if kind == "pyinstrument":
        import pyinstrument

        return pyinstrument.Profiler(interval=0.0005)
    return None


def save_profile(profiler, kind: str, prefix: str) -> str:
    """Write a profile made by ``new_profiler(kind)`` next to ``prefix``; its path."""
    if kind == "cprofile":
        path = f"{prefix}.pstats"
        profiler.dump_stats(path)
    else:
        path = f"{prefix}.txt"
        with open(path, "w") as fh:
            fh.write(profiler.output_text(unicode=False, color=False, show_all=False))
    return path


def report(name: str, f: dict) -> None:
    per = ", ".join(f"{k} {v:g}" for k, v in f["per_request"].items())
    print(f"  {name:<7} {f['n']} requests {f['statuses']}: API CPU {f['cpu_ms']:.2f} ms, PostgreSQL CPU "
          f"{f['pg_cpu_ms']:.2f} ms, wall {f['wall_ms']:.2f} ms per request")
    print(f"          per request: {per}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="requests of each kind (default 500)")
    parser.add_argument("--profile", choices=["none", "cprofile", "pyinstrument"], default="none")
    parser.add_argument("--out", default="/tmp/motion-api-profile", help="profile output prefix")
    c.add_service_arguments(parser)
    args = parser.parse_args(argv)
    c.header(f"api_profile: {args.requests} submissions and polls in process")
    services = c.Services(args.database_url, args.redis_url)
    db = None
    try:
        from api import create_app
        from orchestrator.config import Settings

        _stack.load(services.database_url, _stack.inventory(16, 4, max(1, args.requests // 128 + 1), 1, "64KiB"))
        key = c.create_admin_key(services.database_url)
        settings = Settings(database_url=services.database_url, broker_url=services.redis_url)
        app = create_app(settings)  # its own database and engine options, as under gunicorn
        db = app.config["MOTION_DB"]
        flask = app.test_client()
        counts = Counts(db.engine)

        def url(command: str, **params) -> str:
            return "/client/api?" + c.signed_query({"command": command, **params}, key["apikey"], key["secretkey"])

        moves = _stack.moves(services)[:args.requests + 20]
        for m in moves[:20]:  # warm-up: imports, pools, caches
            flask.get(url("migrateVolume", volumeid=m.volume, storageid=m.dest, livemigrate="true"))
        pg_pids = _stack.postgres_pids(services)
        submits = [url("migrateVolume", volumeid=m.volume, storageid=m.dest, livemigrate="true")
                   for m in moves[20:]]
        jobs = [j for (j,) in services.sql("select uuid from async_jobs where status = 0 order by id desc")]
        polls = [url("queryAsyncJobResult", jobid=jobs[i % len(jobs)]) for i in range(args.requests)]
        profilers = {kind: new_profiler(args.profile) for kind in ("submit", "poll") if args.profile != "none"}
        results = {"submit": measure(app, submits, counts, pg_pids, profilers.get("submit")),
                   "poll": measure(app, polls, counts, pg_pids, profilers.get("poll"))}
        for kind, figures in results.items():
            report(kind, figures)
        for kind, profiler in profilers.items():
            print(f"  profile of {kind}: {save_profile(profiler, args.profile, f'{args.out}-{kind}')}")
        return 0
    finally:
        if db is not None:
            db.dispose()
        services.close()


if __name__ == "__main__":
    sys.exit(main())
