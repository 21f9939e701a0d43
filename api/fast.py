"""The fast lane: signed GETs of ``/client/api`` answered without Flask.

This WSGI layer sits in front of the Flask app (``app.wsgi_app``). It takes the requests API
clients send most - a GET signed with ``apikey`` and ``signature``, no session cookie - and
answers them without Flask's request context, routing, hooks and response handling, which cost
about as much CPU as a poll's own work and a tenth of a submission's:

- ``queryAsyncJobResult`` answered with the job: the same size and character checks
  (``limits``), caller check and credentials cache (``auth``), statement and rendering
  (``job_commands.poll``), without the unit of work and audit scope a command gets. A poll it
  would not answer with the job goes on to the next case.
- every other command except those that manage sessions (``login``, ``logout``...): through
  ``app.respond``, the very function the Flask route calls (checks, caller, role, audit,
  handler, envelopes, errors).

Both count and log the request with ``observability.record``, as Flask's hook does. Everything
else goes to the Flask app untouched: other paths, POSTs, requests with a cookie or without a
signature, oversized or undecodable query strings. The lane changes nothing before handing over.
"""
from __future__ import annotations

import logging
import time

from . import observability
from .auth import signed_caller
from .auth_commands import SELF_AUTHENTICATED
from .errors import encode
from .job_commands import poll
from .limits import MAX_QUERY_BYTES, _urlencoded, check_parameters
from .params import UUID_RE

POLL = "queryAsyncJobResult"
CONTENT_TYPE = ("Content-Type", "application/json; charset=UTF-8")


class _Declined(Exception):
    """The fast lane leaves this request to the Flask app."""


def _declined(*_args) -> _Declined:
    return _Declined()


class Lane:
    """WSGI middleware: ``Lane(app.wsgi_app, answer, read_fast, load_credentials, credentials)``.

    ``answer(pairs, values)`` is the app's ``respond`` for this app (a response and a job id);
    ``read_fast(statement, params)`` runs one read (``registry.read_fast``);
    ``load_credentials(api_key)`` reads a key's credentials from the database, and
    ``credentials`` is the app's ``CredentialsCache``."""

    def __init__(self, wsgi_app, answer, read_fast, load_credentials, credentials):
        self.wsgi_app = wsgi_app
        self.answer = answer
        self.read_fast = read_fast
        self.load_credentials = load_credentials
        self.credentials = credentials
        self.polls_answered = observability.REQUESTS.labels(POLL, "200")
        self.poll_latency = observability.LATENCY.labels(POLL)

    def __call__(self, environ, start_response):
        if (environ.get("REQUEST_METHOD") != "GET" or environ.get("PATH_INFO") != "/client/api"
                or "HTTP_COOKIE" in environ):
            return self.wsgi_app(environ, start_response)
        started = time.perf_counter()
        try:
            pairs, values = _signed_parameters(environ.get("QUERY_STRING", ""))
        except Exception:  # noqa: BLE001 - unsigned, oversized, undecodable...: Flask answers
            return self.wsgi_app(environ, start_response)
        if values.get("command") == POLL:
            try:
                body, job = self._poll(pairs, values)
            except Exception:  # noqa: BLE001 - refused, or the database failed: the general case
                pass
            else:
                start_response("200 OK", [CONTENT_TYPE, ("Content-Length", str(len(body)))])
                seconds = time.perf_counter() - started
                self.polls_answered.inc()
                self.poll_latency.observe(seconds)
                if observability.log.isEnabledFor(logging.DEBUG):
                    observability.log.debug("%s answered", POLL, extra={
                        "command": POLL, "code": 200, "ms": round(seconds * 1000, 1), "job": job[:64]})
                return [body]
        response, job = self.answer(pairs, values)
        observability.record(values, response, time.perf_counter() - started, job)
        return response(environ, start_response)

    def _poll(self, pairs, values) -> tuple[bytes, str]:
        check_parameters(pairs)
        job = values.get("jobid")
        if not job or not UUID_RE.match(job):
            raise _Declined()
        caller = signed_caller(self.load_credentials, pairs, values, self.credentials)
        if isinstance(caller, str):  # refused: ``respond`` refuses it again, and logs why, once
            raise _Declined()
        body = {"queryasyncjobresultresponse": poll(self.read_fast, caller, job, _declined)}
        return encode(body), job


def _signed_parameters(query_string: str) -> tuple[list, dict]:
    """The pairs and values of a signed request that is not about sessions; else raises."""
    raw = query_string.encode("latin-1")  # PEP 3333: the bytes as sent, one character each
    if len(raw) > MAX_QUERY_BYTES:
        raise _Declined()
    pairs = _urlencoded(raw)
    values = {name.lower(): value for name, value in pairs}
    if not values.get("apikey") or not values.get("signature") or values.get("command") in SELF_AUTHENTICATED:
        raise _Declined()
    return pairs, values
