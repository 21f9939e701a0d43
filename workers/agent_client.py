"""HTTP client of the host-agent protocol (docs/agent-protocol.md), the runner's AgentPort.

Connection errors, timeouts and 5xx answers become AgentUnreachable (try again later); a 4xx
answer to a command we built is AgentProtocolError (a bug on our side). Every call is timed and
its failures counted (``workers.metrics``).

One ``requests.Session`` (kept-alive connections) with ``trust_env`` off: agents are reached
directly, never through ``HTTP(S)_PROXY``, and requests does not look the environment up again
on every call. With ``wait`` > 0, posting and reading a command ask the agent to answer as soon
as the command ends, or after ``wait`` seconds (``?wait=``, docs/agent-protocol.md): an instant
migration is then finished in the answer to its POST, and the end of a long one is seen at once.
An agent that does not know the parameter ignores it and answers at once.
"""
from __future__ import annotations

import requests

from orchestrator.errors import AgentProtocolError, AgentUnreachable

from .metrics import observed


class AgentClient:
    def __init__(self, timeout: float = 10.0, wait: float = 0.0):
        self.timeout = timeout
        self.wait = max(0.0, min(wait, timeout / 2))  # the agent's wait stays well inside our timeout
        self.http = requests.Session()
        self.http.trust_env = False
        self._waiting = f"?wait={self.wait:g}" if self.wait else ""

    def _call(self, method: str, url: str, body: dict | None = None, missing_ok: bool = False):
        try:
            response = self.http.request(method, url, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise AgentUnreachable(f"host agent at {url} did not answer: {exc}") from exc
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 500:
            raise AgentUnreachable(f"host agent at {url} answered {response.status_code}")
        try:
            data = response.json()
        except ValueError:
            raise AgentProtocolError(f"host agent at {url} answered non-JSON "
                                     f"(HTTP {response.status_code})") from None
        if response.status_code >= 400:
            raise AgentProtocolError(f"host agent at {url} refused the request: "
                                     f"{data.get('error', response.status_code)}")
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
