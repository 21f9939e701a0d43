"""The agent answers on persistent HTTP/1.1 connections, request after request, with the same
answers as before; a client that asks to close, an HTTP/1.0 client and a stopping agent close."""
from __future__ import annotations

import http.client
import json
import socket
import uuid

import pytest

from agent.serve import AgentServer
from agent.testing import make_pool, migrate_body


@pytest.fixture
def server(tmp_path):
    with AgentServer(["h1"], tmp_path, zero_copy=True) as srv:
        yield srv


def connect(server) -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.connect()
    return conn


def call(conn, method, path, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    answer = conn.getresponse()
    return answer.status, answer.getheader("Connection"), answer.read()


def given_a_volume(conn, pool):
    vid = str(uuid.uuid4())
    status, _, _ = call(conn, "POST", "/hosts/h1/volumes", {"id": vid, "path": f"{vid}.vhdx", "pool": pool,
                                                            "size": 4096})
    assert status == 201
    return vid, f"{vid}.vhdx"


def test_many_requests_are_answered_on_one_connection(server):
    conn = connect(server)
    first = conn.sock
    src, dst = make_pool("src"), make_pool("dst")
    vid, name = given_a_volume(conn, src)
    for a, b in ((src, dst), (dst, src), (src, dst)):
        status, connection, data = call(conn, "POST", "/hosts/h1/commands?wait=5", migrate_body(vid, name, a, b))
        assert (status, connection, json.loads(data)["state"]) == (202, None, "succeeded")
    assert call(conn, "GET", "/hosts/h1")[0] == 200
    assert conn.sock is first  # never reconnected
    conn.close()


def test_a_body_the_route_does_not_read_does_not_spill_into_the_next_request(server):
    conn = connect(server)
    # The abort route ignores its body; the next request on the connection must still parse.
    status, _, data = call(conn, "POST", "/hosts/h1/commands/nope/abort", {"padding": "x" * 5000})
    assert status == 404 and "nope" in json.loads(data)["error"]
    status, _, data = call(conn, "GET", "/hosts")
    assert (status, json.loads(data)) == (200, {"hosts": ["h1"]})
    conn.close()


def test_a_chunked_request_body_is_read_and_the_connection_kept(server):
    conn = connect(server)
    src, dst = make_pool("src"), make_pool("dst")
    vid, name = given_a_volume(conn, src)
    body = json.dumps(migrate_body(vid, name, src, dst)).encode()
    conn.request("POST", "/hosts/h1/commands?wait=5", body=iter([body[:10], body[10:]]),
                 headers={"Content-Type": "application/json"}, encode_chunked=True)
    answer = conn.getresponse()
    assert (answer.status, json.loads(answer.read())["state"]) == (202, "succeeded")
    assert call(conn, "GET", "/hosts/h1")[0] == 200
    conn.close()


def test_a_client_asking_to_close_gets_connection_close_and_the_connection_ends(server):
    conn = connect(server)
    status, connection, _ = call(conn, "GET", "/hosts", headers={"Connection": "close"})
    assert (status, connection) == (200, "close")
    assert conn.sock is None or conn.sock.recv(1) == b""


def test_an_http_1_0_client_gets_its_answer_and_a_closed_connection(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /hosts HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" in head
    assert json.loads(body) == {"hosts": ["h1"]}


def test_a_head_request_gets_headers_without_a_body_and_the_connection_stays_usable(server):
    conn = connect(server)
    conn.request("HEAD", "/hosts")
    answer = conn.getresponse()
    assert answer.status == 200 and int(answer.getheader("Content-Length")) > 0 and answer.read() == b""
    assert call(conn, "GET", "/hosts")[0] == 200
    conn.close()


def test_errors_keep_their_json_answers_on_a_kept_connection(server):
    conn = connect(server)
    status, _, data = call(conn, "POST", "/hosts/h1/commands", headers={}, body=None)
    assert status == 400 and "error" in json.loads(data)
    status, _, data = call(conn, "GET", "/hosts/nope")
    assert status == 404 and "unknown host" in json.loads(data)["error"]
    status, _, data = call(conn, "DELETE", "/hosts")
    assert status == 405 and "error" in json.loads(data)
    conn.close()


def test_stopping_the_agent_closes_its_idle_kept_alive_connections(tmp_path):
    srv = AgentServer(["h1"], tmp_path).start()
    conn = connect(srv)
    assert call(conn, "GET", "/hosts")[0] == 200
    srv.shutdown()
    conn.sock.settimeout(10)
    assert conn.sock.recv(1) == b""  # closed by the server, not left to a stopped agent
    conn.close()
