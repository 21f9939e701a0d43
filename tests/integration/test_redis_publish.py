"""``workers.publish`` writes what Celery's ``send_task`` writes, and Celery runs it."""
from __future__ import annotations

import base64
import json
import threading

import pytest
import redis
from celery import Celery
from celery.contrib.testing.worker import start_worker

from orchestrator import config
from workers import publish
from workers.app import QUEUE, RUN_JOB, celery_enqueuer, create_celery

pytestmark = pytest.mark.redis
IDS = ("id", "root_id")


def _settings(broker_url: str) -> config.Settings:
    return config.Settings(database_url="sqlite://", broker_url=broker_url)


def _pushed(client, queue: str) -> dict:
    raw = client.rpop(queue)
    assert raw is not None, f"nothing was pushed onto {queue}"
    message = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    return message


def test_the_message_is_the_one_send_task_pushes(redis_url):
    app = create_celery(_settings(redis_url))
    client = redis.Redis.from_url(redis_url)
    app.send_task(RUN_JOB, args=[42], queue=QUEUE)
    theirs = _pushed(client, QUEUE)
    publish.redis_publisher(redis_url, RUN_JOB, QUEUE, lambda: app.thread_oid)(42)
    ours = _pushed(client, QUEUE)
    assert client.llen(QUEUE) == 0

    assert ours.keys() == theirs.keys()
    for key in ("body", "content-encoding", "content-type"):
        assert ours[key] == theirs[key], key
    assert ours["headers"].keys() == theirs["headers"].keys()
    for key, value in theirs["headers"].items():
        if key not in IDS + ("origin",):
            assert ours["headers"][key] == value, key
    assert ours["headers"]["id"] == ours["headers"]["root_id"] == ours["properties"]["correlation_id"]
    assert ours["headers"]["id"] != theirs["headers"]["id"]
    assert ours["headers"]["origin"].split("@")[1] == theirs["headers"]["origin"].split("@")[1]
    assert ours["properties"].keys() == theirs["properties"].keys()
    for key, value in theirs["properties"].items():
        if key not in ("correlation_id", "delivery_tag"):
            assert ours["properties"][key] == value, key
    assert ours["properties"]["delivery_tag"] != theirs["properties"]["delivery_tag"]


def test_a_celery_worker_runs_a_published_message(redis_url):
    app = Celery("publish-test", broker=redis_url, set_as_current=False)
    app.conf.update(task_default_queue=QUEUE, accept_content=["json"], task_ignore_result=True,
                    task_acks_late=True, worker_prefetch_multiplier=1)
    ran, done = [], threading.Event()

    @app.task(name=RUN_JOB, shared=False)  # the runner's task name, recording what it got; this app's only
    def run_job(job_id):
        ran.append(job_id)
        done.set()

    enqueue = celery_enqueuer(_settings(redis_url), app)
    with start_worker(app, pool="solo", perform_ping_check=False, queues=[QUEUE]):
        enqueue(7)
        assert done.wait(30), "the worker did not run the published message"
    assert ran == [7]


def test_the_api_enqueuer_publishes_straight_to_redis_only_on_redis():
    assert publish.supports("redis://127.0.0.1:6379/0")
    assert publish.supports("rediss://example:6380/0")
    for url in ("memory://", "memory://localhost/", "sentinel://h:26379", "amqp://guest@localhost//"):
        assert not publish.supports(url), url


def test_a_broker_that_is_down_makes_the_publish_fail():
    push = publish.redis_publisher("redis://127.0.0.1:1/0", RUN_JOB, QUEUE, lambda: "reply")
    with pytest.raises(redis.RedisError):
        push(1)
