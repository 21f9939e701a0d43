"""The worker's HTTP client of the agent protocol against a real local HTTP server: what it sends,
and how each kind of answer (or none) becomes a record, None, AgentUnreachable or
AgentProtocolError."""
from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from orchestrator.errors import AgentProtocolError, AgentUnreachable
from workers.agent_client import AgentClient


class Agent(BaseHTTPRequestHandler):
    """Answers from ``server.answers[(method, path)]``: (status, body bytes); records requests."""

    def _answer(self):
        self.server.connections.add(self.client_address)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append((self.command, self.path, dict(self.headers), body))
        status, payload = self.server.answers.get((self.command, self.path.partition("?")[0]), (404, b'{"error": "no"}'))
        if status == "hang":
            threading.Event().wait(2)
            return
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        if self.server.drop_after_answer:  # close without saying so, as an agent closing an idle one
            self.close_connection = True

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


class KeepAliveAgent(Agent):
    protocol_version = "HTTP/1.1"  # keeps connections open unless the client asks otherwise


def serve(handler):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.seen, server.answers, server.connections, server.drop_after_answer = [], {}, set(), False
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


def running(handler):
    server = serve(handler)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def agent():
    yield from running(Agent)


@pytest.fixture
def keepalive_agent():
    yield from running(KeepAliveAgent)


def base(server) -> str:
    return f"http://127.0.0.1:{server.server_port}/hosts/h1"


def test_a_command_is_posted_as_json_with_the_wait_and_its_record_returned(agent):
    agent.answers[("POST", "/hosts/h1/commands")] = (202, b'{"id": "c1", "state": "succeeded"}')
    record = AgentClient(timeout=5, wait=0.2).post_command(base(agent), {"id": "c1", "type": "MigrateVolumeCommand"})
    assert record == {"id": "c1", "state": "succeeded"}
    [(method, path, headers, body)] = agent.seen
    assert (method, path) == ("POST", "/hosts/h1/commands?wait=0.2")
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"id": "c1", "type": "MigrateVolumeCommand"}


def test_an_unknown_command_is_none_and_other_refusals_are_protocol_errors(agent):
    client = AgentClient(timeout=5)
    assert client.get_command(base(agent), "missing") is None
    assert agent.seen[0][1] == "/hosts/h1/commands/missing"  # no wait asked for: no query
    agent.answers[("POST", "/hosts/h1/commands")] = (400, b'{"error": "volumePath is missing"}')
    with pytest.raises(AgentProtocolError, match="refused the request: volumePath is missing"):
        client.post_command(base(agent), {"id": "c2"})
    agent.answers[("GET", "/hosts/h1/volumes/v1")] = (200, b"<html>not json</html>")
    with pytest.raises(AgentProtocolError, match=r"non-JSON \(HTTP 200\)"):
        client.get_volume(base(agent), "v1")


def test_server_errors_silence_and_refused_connections_are_unreachable(agent):
    client = AgentClient(timeout=0.5)
    agent.answers[("GET", "/hosts/h1/commands/c3")] = (503, b'{"error": "busy"}')
    with pytest.raises(AgentUnreachable, match="answered 503"):
        client.get_command(base(agent), "c3")
    agent.answers[("GET", "/hosts/h1/commands/c4")] = ("hang", b"")
    with pytest.raises(AgentUnreachable, match="did not answer"):
        client.get_command(base(agent), "c4")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens on it once closed
    with pytest.raises(AgentUnreachable, match="did not answer"):
        client.get_command(f"http://127.0.0.1:{port}/hosts/h1", "c5")
    with pytest.raises(AgentUnreachable, match="not an http"):
        client.get_command("agent.invalid/hosts/h1", "c6")


def test_the_agent_is_reached_directly_even_with_a_proxy_in_the_environment(agent, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    agent.answers[("GET", "/hosts/h1/vms/i-2-3-VM")] = (200, b'{"name": "i-2-3-VM"}')
    assert AgentClient(timeout=5).get_vm(base(agent), "i-2-3-VM") == {"name": "i-2-3-VM"}


def test_characters_a_path_may_not_carry_are_escaped(agent):
    agent.answers[("GET", "/hosts/h1/vms/a%20vm")] = (200, b'{"name": "a vm"}')
    assert AgentClient(timeout=5).get_vm(base(agent), "a vm") == {"name": "a vm"}


def test_an_agent_that_keeps_connections_open_is_called_on_one(keepalive_agent):
    keepalive_agent.answers[("GET", "/hosts/h1/commands/c7")] = (200, b'{"id": "c7", "state": "running"}')
    client = AgentClient(timeout=5, wait=0.1)
    for _ in range(3):
        assert client.get_command(base(keepalive_agent), "c7") == {"id": "c7", "state": "running"}
    assert len(keepalive_agent.seen) == 3 and len(keepalive_agent.connections) == 1
    client.close()


def test_a_kept_connection_the_agent_closed_is_replaced_and_the_call_made_once_more(keepalive_agent):
    keepalive_agent.answers[("POST", "/hosts/h1/commands")] = (200, b'{"id": "c8", "state": "succeeded"}')
    keepalive_agent.drop_after_answer = True
    client = AgentClient(timeout=5)
    for _ in range(3):  # each call finds the connection of the one before closed
        assert client.post_command(base(keepalive_agent), {"id": "c8"})["state"] == "succeeded"
    assert len(keepalive_agent.seen) == 3 and len(keepalive_agent.connections) == 3
