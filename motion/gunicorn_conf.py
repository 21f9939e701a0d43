"""gunicorn settings for the API: ``gunicorn -c python:motion.gunicorn_conf -w 2 "api:create_app()"``.

With several gunicorn workers, each keeps its own request counters; a scrape of ``/metrics``
reaches one of them. This file gives all workers of one gunicorn one Prometheus multiprocess
directory (``PROMETHEUS_MULTIPROC_DIR``: a fresh temporary directory unless already set, removed
at exit), so that any worker's ``/metrics`` adds up every worker's counters. It must take effect
before the workers import the app, so do not combine it with ``--preload`` unless you set
``PROMETHEUS_MULTIPROC_DIR`` (an empty directory) yourself. Database-derived metrics need none of
this: every process computes them from the database at scrape time.
"""
from __future__ import annotations

import os
import shutil
import tempfile

_created: list[str] = []


def on_starting(server) -> None:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        path = tempfile.mkdtemp(prefix="motion-api-metrics-")
        _created.append(path)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    for path in _created:
        shutil.rmtree(path, ignore_errors=True)
