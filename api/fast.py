"""The poll's fast lane: a signed ``queryAsyncJobResult`` answered without Flask.

Clients poll every job they start until it ends, so polls are the API's most frequent request.
This WSGI layer sits in front of the Flask app (``app.wsgi_app``) and answers a signed GET of
``queryAsyncJobResult`` itself when the answer is the job: the same size and character checks
(``limits``), the same caller check and credentials cache (``auth``), the same statement and
rendering (``job_commands.poll``), the same counters and log line (``observability``). It skips
Flask's request context, routing, hooks and response objects, which cost about as much CPU as
everything else a poll does.

Everything else goes to the Flask app untouched: other commands and paths, POSTs, requests
without ``apikey`` and ``signature`` (sessions), and every poll the fast lane would not answer
with the job (bad parameters or signature, an unknown job, another account's job, a database
error). Flask then checks it from the start and words the refusal, so every refusal is made in
one place; the fast lane changes nothing before handing over.
"""
from __future__ import annotations

import logging
import time

from . import observability
from .auth import signed_caller
from .errors import encode
from .job_commands import poll
from .limits import MAX_QUERY_BYTES, _urlencoded, check_parameters
from .params import UUID_RE

COMMAND = "queryAsyncJobResult"
HEADERS_CONTENT_TYPE = ("Content-Type", "application/json; charset=UTF-8")


class _Declined(Exception):
    """The fast lane leaves this request to the Flask app."""


def _declined(*_args) -> _Declined:
    return _Declined()


class PollLane:
    """WSGI middleware: ``PollLane(app.wsgi_app, read_fast, load_credentials, credentials)``.

    ``read_fast(statement, params)`` runs one read (``registry.Context.read_fast``);
    ``load_credentials(api_key)`` reads a key's credentials from the database, and
    ``credentials`` is the app's ``CredentialsCache``."""

    def __init__(self, wsgi_app, read_fast, load_credentials, credentials):
        self.wsgi_app = wsgi_app
        self.read_fast = read_fast
        self.load_credentials = load_credentials
        self.credentials = credentials
        self.answered = observability.REQUESTS.labels(COMMAND, "200")
        self.latency = observability.LATENCY.labels(COMMAND)

    def __call__(self, environ, start_response):
        if (environ.get("REQUEST_METHOD") != "GET" or environ.get("PATH_INFO") != "/client/api"
                or "queryAsyncJobResult" not in environ.get("QUERY_STRING", "")):
            return self.wsgi_app(environ, start_response)
        started = time.perf_counter()
        try:
            body, job = self._answer(environ.get("QUERY_STRING", ""))
        except Exception:  # noqa: BLE001 - declined, refused, or the database failed: Flask answers
            return self.wsgi_app(environ, start_response)
        start_response("200 OK", [HEADERS_CONTENT_TYPE, ("Content-Length", str(len(body)))])
        seconds = time.perf_counter() - started
        self.answered.inc()
        self.latency.observe(seconds)
        if observability.log.isEnabledFor(logging.DEBUG):
            observability.log.debug("%s answered", COMMAND, extra={
                "command": COMMAND, "code": 200, "ms": round(seconds * 1000, 1), "job": job[:64]})
        return [body]

    def _answer(self, query_string: str) -> tuple[bytes, str]:
        raw = query_string.encode("latin-1")  # PEP 3333: the bytes as sent, one character each
        if len(raw) > MAX_QUERY_BYTES:
            raise _Declined()
        pairs = _urlencoded(raw)
        check_parameters(pairs)
        values = {name.lower(): value for name, value in pairs}
        job = values.get("jobid")
        if values.get("command") != COMMAND or not values.get("apikey") or not values.get("signature") \
                or not job or not UUID_RE.match(job):
            raise _Declined()
        caller = signed_caller(self.load_credentials, pairs, values, self.credentials)
        if isinstance(caller, str):  # refused: Flask refuses it again, and logs why, once
            raise _Declined()
        body = {"queryasyncjobresultresponse": poll(self.read_fast, caller, job, _declined)}
        return encode(body), job
