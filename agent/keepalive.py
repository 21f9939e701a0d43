"""The agent's HTTP request handler: werkzeug's, with HTTP/1.1 persistent connections.

werkzeug's development server closes the connection after every answer (``Connection: close``):
its ``run_wsgi`` cannot tell where a request body ends, so it reads whatever is left on the
socket. For the agent that meant a TCP connection, an accepted socket and a new server thread
per request - per command, since the worker posts each one - on both sides. ``KeepAliveHandler``
runs the WSGI app itself: the body is exactly ``Content-Length`` bytes (or chunked), what the
app did not read is drained, and the answer carries a ``Content-Length``, so the client's next
request can follow on the same connection (unless it asked to close, or spoke HTTP/1.0). The
answer goes out in one write, and ``TCP_NODELAY`` is set, so a small answer is never held back
waiting for an acknowledgement. Routes, bodies and statuses are the app's, unchanged.

A connection idle for ``IDLE_TIMEOUT`` seconds is closed. ``close_connections(server)`` (on
shutdown) ends every open connection once its current request is answered, so that no client
keeps talking to a server that was stopped.
"""
from __future__ import annotations

import logging
import socket
import threading

from werkzeug.datastructures import Headers
from werkzeug.exceptions import ClientDisconnected
from werkzeug.serving import WSGIRequestHandler
from werkzeug.wsgi import LimitedStream

log = logging.getLogger("agent.http")

IDLE_TIMEOUT = 120.0  # seconds a kept-alive connection may wait for its next request
MAX_DRAIN = 1024 * 1024  # unread body bytes drained to keep a connection; more: close it instead
_NO_BODY = (204, 304)


def track_connections(server) -> None:
    """Give a werkzeug server the set of its open connections (see ``close_connections``)."""
    server.agent_connections = set()
    server.agent_connections_lock = threading.Lock()


def close_connections(server) -> None:
    """End every open connection of ``server`` after its current answer (the reading side is
    shut: an idle connection ends at once, a busy one after it answered)."""
    with server.agent_connections_lock:
        connections = list(server.agent_connections)
    for connection in connections:
        try:
            connection.shutdown(socket.SHUT_RD)
        except OSError:
            pass


class KeepAliveHandler(WSGIRequestHandler):
    """werkzeug's request handler answering on persistent connections (see the module docstring)."""

    disable_nagle_algorithm = True
    timeout = IDLE_TIMEOUT

    def setup(self) -> None:
        super().setup()
        connections = getattr(self.server, "agent_connections", None)
        if connections is not None:
            with self.server.agent_connections_lock:
                connections.add(self.connection)

    def finish(self) -> None:
        connections = getattr(self.server, "agent_connections", None)
        if connections is not None:
            with self.server.agent_connections_lock:
                connections.discard(self.connection)
        super().finish()

    def log_error(self, format: str, *args) -> None:
        if format.startswith("Request timed out"):
            return  # an idle kept-alive connection reaching IDLE_TIMEOUT: nothing went wrong
        super().log_error(format, *args)

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.environ = environ = self.make_environ()
        if not environ.get("wsgi.input_terminated"):  # not chunked: exactly Content-Length bytes
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = -1
            if length < 0:
                self.close_connection = True
                self._answer(400, "Bad Request", [("Content-Type", "application/json")],
                             b'{"error": "Bad Request: invalid Content-Length"}')
                return
            environ["wsgi.input"] = LimitedStream(self.rfile, length)
            environ["wsgi.input_terminated"] = True
        started: list = []

        def start_response(status, headers, exc_info=None):
            if exc_info and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [status, headers]
            return lambda data: body.append(data)  # the legacy write(): rarely used, still honoured

        body: list[bytes] = []
        try:
            result = self.server.app(environ, start_response)
            try:
                body.extend(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
            self._drain(environ["wsgi.input"])
        except (ConnectionError, socket.timeout, ClientDisconnected):
            self.close_connection = True
            return
        except Exception:
            log.exception("unexpected error serving %s %s", self.command, self.path)
            self.close_connection = True
            self._answer(500, "Internal Server Error", [("Content-Type", "application/json")],
                         b'{"error": "internal agent error"}')
            return
        code_text, _, reason = started[0].partition(" ")
        self._answer(int(code_text), reason, started[1], b"".join(body))

    def _drain(self, stream) -> None:
        """Read what the app left of the request body, so the next request starts where it should."""
        drained = 0
        while True:
            chunk = stream.read(65536)
            if not chunk:
                return
            drained += len(chunk)
            if drained > MAX_DRAIN:
                self.close_connection = True
                return

    def _answer(self, code: int, reason: str, headers, data: bytes) -> None:
        headers = Headers(headers)
        if code in _NO_BODY or 100 <= code < 200:
            data = b""
        elif "Content-Length" not in headers:
            headers["Content-Length"] = str(len(data))
        if self.command == "HEAD":
            data = b""
        if self.close_connection:
            headers["Connection"] = "close"
        lines = [f"{self.protocol_version} {code} {reason}", f"Server: {self.version_string()}",
                 f"Date: {self.date_time_string()}", *(f"{k}: {v}" for k, v in headers.items())]
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data)
        self.log_request(code, len(data))
