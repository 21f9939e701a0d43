"""Publishing ``motion.run_job`` wake-ups straight to a Redis broker.

The API publishes one message per accepted job. Through Celery's ``send_task`` that costs about
0.75 ms of CPU per message (kombu builds a new Redis client object for every publish, declares
the queue, runs its retry wrapper); written here it costs about 0.15 ms: the same message -
Celery's message protocol 2 in kombu's Redis envelope, exactly what ``send_task`` pushes for a
task with JSON arguments on the default exchange - and one LPUSH on a kept connection pool.

Only for ``redis://`` and ``rediss://`` brokers; any other (``memory://`` in the embedded
system, Sentinel, ...) keeps ``send_task``. ``tests/integration/test_redis_publish.py`` compares
the two messages field by field on a real Redis, and the end-to-end tests run real Celery workers
on messages published this way. A failed publish raises, as ``send_task`` does: the job stays
unpublished and the sweep publishes it later (``motion.publish``).
"""
from __future__ import annotations

import base64
import os
import socket
import uuid
from typing import Callable

import orjson
import redis
from redis.backoff import ConstantBackoff
from redis.exceptions import ConnectionError as RedisConnectionError, TimeoutError as RedisTimeoutError
from redis.retry import Retry

# What send_task's retry policy and connection timeout are in ``workers.app``: give up within a
# few seconds, so that the API answers and the sweep publishes later.
CONNECT_TIMEOUT = 3.0
RETRIES = 2
RETRY_INTERVAL = 0.5
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def supports(broker_url: str) -> bool:
    """Whether ``broker_url`` is a plain Redis broker this module can publish to."""
    return broker_url.startswith(("redis://", "rediss://"))


def redis_publisher(broker_url: str, task: str, queue: str, reply_to: Callable[[], str]) -> Callable[[int], None]:
    """A function that publishes ``task(job_id)`` to ``queue`` on the Redis at ``broker_url``.
    ``reply_to`` gives the value Celery puts in the message's ``reply_to`` (the app's
    ``thread_oid``); results are ignored, so it only keeps the message identical."""
    client = redis.Redis.from_url(
        broker_url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=CONNECT_TIMEOUT,
        retry=Retry(ConstantBackoff(RETRY_INTERVAL), RETRIES),
        retry_on_error=[RedisConnectionError, RedisTimeoutError])
    origin: dict[int, str] = {}

    def publish(job_id: int) -> None:
        pid = os.getpid()
        if pid not in origin:  # a forked process names itself
            origin.clear()
            origin[pid] = f"gen{pid}@{socket.gethostname()}"
        client.lpush(queue, message(task, queue, [int(job_id)], origin[pid], reply_to()))
    return publish


def message(task: str, queue: str, args: list, origin: str, reply_to: str) -> bytes:
    """The bytes ``send_task(task, args=args, queue=queue)`` pushes onto the Redis list ``queue``."""
    task_id = str(uuid.uuid4())
    body = base64.b64encode(orjson.dumps([args, {}, _EMBED])).decode("ascii")
    return orjson.dumps({
        "body": body,
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py", "task": task, "id": task_id, "shadow": None, "eta": None, "expires": None,
            "group": None, "group_index": None, "retries": 0, "timelimit": [None, None],
            "root_id": task_id, "parent_id": None, "argsrepr": repr(args), "kwargsrepr": "{}",
            "origin": origin, "ignore_result": None, "replaced_task_nesting": 0,
            "stamped_headers": None, "stamps": {},
        },
        "properties": {
            "correlation_id": task_id, "reply_to": reply_to, "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue}, "priority": 0,
            "body_encoding": "base64", "delivery_tag": str(uuid.uuid4()),
        },
    })
