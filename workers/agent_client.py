"""HTTP client of the host-agent protocol (docs/agent-protocol.md), the runner's AgentPort.

Connection errors, timeouts and 5xx answers become AgentUnreachable (try again later); a 4xx
answer to a command we built is AgentProtocolError (a bug on our side).
"""
from __future__ import annotations

import requests

from orchestrator.errors import AgentProtocolError, AgentUnreachable


class AgentClient:
    def __init__(self, timeout: float = 10.0):
        self.timeout = timeout
        self.http = requests.Session()

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

    def post_command(self, base_url: str, payload: dict) -> dict:
        return self._call("POST", f"{base_url}/commands", payload)

    def get_command(self, base_url: str, command_id: str) -> dict | None:
        return self._call("GET", f"{base_url}/commands/{command_id}", missing_ok=True)

    def abort_command(self, base_url: str, command_id: str) -> dict | None:
        return self._call("POST", f"{base_url}/commands/{command_id}/abort", {}, missing_ok=True)

    def create_volume(self, base_url: str, payload: dict) -> dict:
        return self._call("POST", f"{base_url}/volumes", payload)

    def get_volume(self, base_url: str, volume_id: str) -> dict | None:
        return self._call("GET", f"{base_url}/volumes/{volume_id}", missing_ok=True)

    def add_fault(self, base_url: str, fault: dict) -> dict:
        return self._call("POST", f"{base_url}/faults", fault)

    def register_vm(self, base_url: str, payload: dict) -> dict:
        return self._call("POST", f"{base_url}/vms", payload)

    def get_vm(self, base_url: str, name: str) -> dict | None:
        return self._call("GET", f"{base_url}/vms/{name}", missing_ok=True)
