"""The command routes answered in front of Flask give exactly the answers Flask's routes give."""
from __future__ import annotations

import uuid

import pytest

from agent.host import HostAgent
from agent.server import create_app
from agent.testing import make_pool, migrate_body


@pytest.fixture
def apps(tmp_path):
    """Two apps on two hosts with the same names: one as served, one with Flask's routes only."""
    hosts = [HostAgent("h1", tmp_path / side, zero_copy=True) for side in ("fast", "flask")]
    fast, flask_only = create_app({"h1": hosts[0]}), create_app({"h1": hosts[1]})
    flask_only.wsgi_app = flask_only.wsgi_app.behind
    yield fast, flask_only
    for host in hosts:
        host.close()


def volume(client, pool, vid):
    status = client.post("/hosts/h1/volumes", json={"id": vid, "path": f"{vid}.vhdx", "pool": pool,
                                                    "size": 4096}).status_code
    assert status == 201


def comparable(response) -> tuple:
    body = response.get_json(silent=True)
    if isinstance(body, dict):  # timestamps differ between the two hosts
        body = {k: v for k, v in body.items() if k not in ("created", "updated")}
    return response.status_code, response.mimetype, body


def test_both_paths_answer_every_command_request_alike(apps):
    src, dst = make_pool("src"), make_pool("dst")
    vid, cid = str(uuid.uuid4()), str(uuid.uuid4())
    good = migrate_body(vid, f"{vid}.vhdx", src, dst, command_id=cid)
    requests = [
        ("POST", "/hosts/h1/commands?wait=5", {"json": good}),             # new: 202, succeeded
        ("POST", "/hosts/h1/commands", {"json": good}),                    # known id: 200
        ("POST", "/hosts/h1/commands?wait=5", {"json": good}),
        ("GET", f"/hosts/h1/commands/{cid}", {}),
        ("GET", f"/hosts/h1/commands/{cid}?wait=0.5", {}),
        ("GET", f"/hosts/h1/commands/{cid}?wait=", {}),
        ("GET", f"/hosts/h1/commands/{cid}?wait=-1", {}),                  # 400
        ("GET", f"/hosts/h1/commands/{cid}?wait=nan", {}),
        ("GET", "/hosts/nope/commands/x?wait=bad", {}),                    # host first on a GET: 404
        ("POST", "/hosts/nope/commands?wait=bad", {"json": good}),         # wait first on a POST: 400
        ("POST", "/hosts/nope/commands", {"json": good}),                  # 404
        ("GET", "/hosts/h1/commands/unknown", {}),                         # 404
        ("POST", "/hosts/h1/commands", {"data": "{not json"}),             # 400
        ("POST", "/hosts/h1/commands", {"data": ""}),
        ("POST", "/hosts/h1/commands", {"json": [1, 2]}),
        ("POST", "/hosts/h1/commands", {"json": {**good, "id": "bad id!"}}),
        ("POST", "/hosts/h1/commands", {"json": {**good, "type": "Nope"}}),
        ("PUT", "/hosts/h1/commands", {"json": good}),                     # 405, from Flask on both
        ("DELETE", f"/hosts/h1/commands/{cid}", {}),
        ("POST", f"/hosts/h1/commands/{cid}", {}),
        ("GET", "/hosts/h1/commands", {}),
        ("GET", "/hosts/h1/commands/", {}),
        ("HEAD", f"/hosts/h1/commands/{cid}", {}),
    ]
    fast, flask_only = apps
    answers = {}
    for app in apps:
        client = app.test_client()
        volume(client, src, vid)
        answers[app] = [comparable(client.open(path, method=method, **kw)) for method, path, kw in requests]
    for request, mine, theirs in zip(requests, answers[fast], answers[flask_only]):
        assert mine == theirs, request[:2]
    assert answers[fast][0][0] == 202 and answers[fast][0][2]["state"] == "succeeded"
    assert [a[0] for a in answers[fast][6:13]] == [400, 400, 404, 400, 404, 404, 400]


def test_the_command_routes_skip_flasks_dispatch_and_the_other_routes_do_not(apps, monkeypatch):
    fast, _ = apps
    dispatched = []
    real = fast.full_dispatch_request
    monkeypatch.setattr(fast, "full_dispatch_request", lambda: dispatched.append(1) or real())
    client = fast.test_client()
    assert client.get("/hosts/h1/commands/unknown").status_code == 404
    assert client.post("/hosts/h1/commands", data="{").status_code == 400
    assert dispatched == []
    assert client.get("/hosts/h1").status_code == 200
    assert dispatched == [1]
