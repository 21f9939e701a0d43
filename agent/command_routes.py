"""The two command routes the orchestrator calls per command, served without Flask's dispatch.

``POST {base}/commands`` and ``GET {base}/commands/{id}`` are on the path of every migration;
Flask's request context, routing, error handlers and ``jsonify`` cost about as much CPU as the
agent's own work for an instant (zero-copy) command. ``command_routes(wsgi_app, hosts)`` wraps
the Flask app's WSGI callable (``app.wsgi_app``, so the test client goes through it too) and
answers those two routes itself, with the same answers: the same checks in the same order
(``?wait`` before the host on a POST, after it on a GET), the body decoded as Flask's
``get_json(force=True, silent=True)`` does, the same ``{"error": text}`` answers and statuses, JSON
with the keys in the record's order. Every other request, and these paths with another
method, goes to Flask (which answers 405, ``HEAD`` ...).
"""
from __future__ import annotations

import json
import logging
import re
from http import HTTPStatus
from urllib.parse import parse_qsl

import orjson
from werkzeug.wsgi import get_input_stream

from agent.errors import AgentError, InvalidRequest, NotFound

log = logging.getLogger("agent.server")

MAX_WAIT = 10.0  # seconds a request may ask to wait for its command to end
_ROUTE = re.compile(r"/hosts/([^/]+)/commands(?:/([^/]+))?")


def find_host(hosts: dict, name: str):
    """The host agent called ``name``, or ``NotFound`` naming the hosts served."""
    agent = hosts.get(name)
    if agent is None:
        raise NotFound(f"unknown host {name!r}; this agent serves: {', '.join(sorted(hosts))}")
    return agent


def parse_wait(value: str | None) -> float:
    """``?wait=SECONDS``: answer once the command is terminal or after that long (at most 10)."""
    if value is None or value == "":
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise InvalidRequest(f"query parameter 'wait' must be a number of seconds >= 0, got {value!r}")
    return min(seconds, MAX_WAIT)


def _query_value(environ: dict, name: str) -> str | None:
    for key, value in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True):
        if key == name:
            return value
    return None


def _json_body(environ: dict):
    """The decoded JSON body, or ``None`` when it is absent or malformed (validation says 400)."""
    try:
        return json.loads(get_input_stream(environ).read())
    except ValueError:
        return None


def _answer(start_response, status: int, data) -> list[bytes]:
    try:
        body = orjson.dumps(data) + b"\n"
    except TypeError:
        body = (json.dumps(data, separators=(",", ":")) + "\n").encode()
    start_response(f"{status} {HTTPStatus(status).phrase}",
                   [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def command_routes(wsgi_app, hosts: dict):
    """``wsgi_app`` with the two command routes answered in front of it (see the module docstring)."""

    def wsgi(environ, start_response):
        method = environ["REQUEST_METHOD"]
        if method != "POST" and method != "GET":
            return wsgi_app(environ, start_response)
        # PATH_INFO is WSGI's latin-1 text; Flask routes on its UTF-8 decoding.
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
        match = _ROUTE.fullmatch(path)
        if match is None or (method == "POST") != (match.group(2) is None):
            return wsgi_app(environ, start_response)
        name, command_id = match.groups()
        try:
            if command_id is None:
                wait = parse_wait(_query_value(environ, "wait"))
                record, created = find_host(hosts, name).submit_command(_json_body(environ), wait)
                return _answer(start_response, 202 if created else 200, record)
            agent = find_host(hosts, name)
            return _answer(start_response, 200, agent.command(command_id, parse_wait(_query_value(environ, "wait"))))
        except AgentError as exc:
            return _answer(start_response, exc.status, {"error": exc.message})
        except Exception as exc:
            log.exception("unexpected error serving %s %s", method, path)
            return _answer(start_response, 500, {"error": f"internal agent error: {exc!r}"})

    wsgi.behind = wsgi_app  # the app it stands in front of (tests compare the two)
    return wsgi
