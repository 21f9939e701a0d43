"""HTTP client of the host-agent protocol (docs/agent-protocol.md), the runner's AgentPort.

Connection errors, timeouts and 5xx answers become AgentUnreachable (try again later); a 4xx
answer to a command we built is AgentProtocolError (a bug on our side). Every call is timed and
its failures counted (``workers.metrics``).

Each call is one HTTP/1.1 exchange with ``http.client`` (requests' machinery cost the worker more
CPU than the exchange itself), on a connection kept per agent address while the agent keeps it
open. Agents are reached directly, never through ``HTTP(S)_PROXY``. With ``wait`` > 0,
posting and reading a command ask the agent to answer as soon as the command ends, or after
``wait`` seconds (``?wait=``, docs/agent-protocol.md): an instant migration is then finished in
the answer to its POST, and the end of a long one is seen at once. An agent that does not know
the parameter ignores it and answers at once.
"""
from __future__ import annotations

import http.client
import json
from functools import lru_cache
from urllib.parse import quote, urlsplit

from orchestrator.errors import AgentProtocolError, AgentUnreachable

from .metrics import observed


@lru_cache(maxsize=1024)
def _target(url: str) -> tuple[type, str, int | None, str]:
    """(connection class, host, port, path with query) of an agent URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AgentUnreachable(f"host agent URL {url!r} is not an http(s) URL")
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    # as requests did: characters a path may not carry are percent-encoded, escapes kept
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=~") + (f"?{parts.query}" if parts.query else "")
    return kind, parts.hostname, parts.port, path


# A kept connection the agent closed while it was idle fails the next request before the agent
# reads it; such a request is sent once more on a new connection (every agent call is idempotent:
# commands by their id, the rest reads or puts the same state again).
_DROPPED = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


class AgentClient:
    """One per thread (each runner has its own): it keeps one connection per agent address."""

    def __init__(self, timeout: float = 10.0, wait: float = 0.0):
        self.timeout = timeout
        self.wait = max(0.0, min(wait, timeout / 2))  # the agent's wait stays well inside our timeout
        self._waiting = f"?wait={self.wait:g}" if self.wait else ""
        self._kept: dict[tuple, http.client.HTTPConnection] = {}

    def close(self) -> None:
        for conn in self._kept.values():
            conn.close()
        self._kept.clear()

    def _exchange(self, target: tuple, method: str, path: str, payload: bytes | None, headers: dict):
        """(status, body) of one request, on the kept connection to the agent if there is one."""
        kind, host, port = target
        conn = self._kept.pop(target, None)
        reused = conn is not None
        while True:
            if conn is None:
                conn = kind(host, port, timeout=self.timeout)
            try:
                conn.request(method, path, body=payload, headers=headers)
                response = conn.getresponse()
                status, raw = response.status, response.read()
            except _DROPPED:
                conn.close()
                if not reused:
                    raise
                conn, reused = None, False  # the agent had closed it while idle: a new one
                continue
            except BaseException:
                conn.close()
                raise
            if response.will_close:
                conn.close()
            else:
                self._kept[target] = conn
            return status, raw

    def _call(self, method: str, url: str, body: dict | None = None, missing_ok: bool = False):
        kind, host, port, path = _target(url)
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        try:
            status, raw = self._exchange((kind, host, port), method, path, payload, headers)
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out, garbled
            raise AgentUnreachable(f"host agent at {url} did not answer: {exc!r}") from exc
        if status == 404 and missing_ok:
            return None
        if status >= 500:
            raise AgentUnreachable(f"host agent at {url} answered {status}")
        try:
            data = json.loads(raw)
        except ValueError:
            raise AgentProtocolError(f"host agent at {url} answered non-JSON (HTTP {status})") from None
        if status >= 400:
            error = data.get("error", status) if isinstance(data, dict) else status
            raise AgentProtocolError(f"host agent at {url} refused the request: {error}")
        return data

    @observed("post_command")
    def post_command(self, base_url: str, payload: dict) -> dict:
        return self._call("POST", f"{base_url}/commands{self._waiting}", payload)

    @observed("get_command")
    def get_command(self, base_url: str, command_id: str) -> dict | None:
        return self._call("GET", f"{base_url}/commands/{command_id}{self._waiting}", missing_ok=True)

    @observed("abort_command")
    def abort_command(self, base_url: str, command_id: str) -> dict | None:
        return self._call("POST", f"{base_url}/commands/{command_id}/abort", {}, missing_ok=True)

    @observed("create_volume")
    def create_volume(self, base_url: str, payload: dict) -> dict:
        return self._call("POST", f"{base_url}/volumes", payload)

    @observed("get_volume")
    def get_volume(self, base_url: str, volume_id: str) -> dict | None:
        return self._call("GET", f"{base_url}/volumes/{volume_id}", missing_ok=True)

    @observed("add_fault")
    def add_fault(self, base_url: str, fault: dict) -> dict:
        return self._call("POST", f"{base_url}/faults", fault)

    @observed("register_vm")
    def register_vm(self, base_url: str, payload: dict) -> dict:
        return self._call("POST", f"{base_url}/vms", payload)

    @observed("get_vm")
    def get_vm(self, base_url: str, name: str) -> dict | None:
        return self._call("GET", f"{base_url}/vms/{name}", missing_ok=True)
