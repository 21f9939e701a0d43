"""docs/agent-protocol.md is the contract: every route the agent serves and every field it answers
with is written down there."""
from __future__ import annotations

import re
import uuid
from pathlib import Path

from agent.backends.faults import parse_fault
from agent.host import HostAgent
from agent.serve import AgentServer
from agent.server import create_app
from agent.testing import HostClient, make_pool, migrate_body, mws_body

DOC = (Path(__file__).resolve().parents[2] / "docs" / "agent-protocol.md").read_text()


def documented(field: str) -> bool:
    return f"`{field}`" in DOC or f'"{field}"' in DOC


def normalized(path: str) -> str:
    return re.sub(r"\{(?!base\})[^}]*\}", "{}", path)


def test_every_route_of_the_agent_is_documented(tmp_path):
    agent = HostAgent("h1", tmp_path)
    try:
        rules = [r for r in create_app({"h1": agent}).url_map.iter_rules() if r.endpoint != "static"]
    finally:
        agent.close()
    doc_paths = {normalized(p) for p in re.findall(r"\{base\}(?:/[A-Za-z{}]+)*|/hosts\b", DOC)}

    for rule in rules:
        path = re.sub(r"^/hosts/<name>", "{base}", rule.rule)
        path = normalized(re.sub(r"<[^>]+>", "{x}", path))
        assert path in doc_paths, f"{rule.rule} is not in docs/agent-protocol.md"


def test_every_field_of_records_status_vms_and_faults_is_documented(tmp_path):
    with AgentServer(["hv-a", "hv-b"], tmp_path) as server:
        a = HostClient.for_url(server.base_url("hv-a"))
        src, dst, vid = make_pool(), make_pool(), str(uuid.uuid4())
        volume = {"id": vid, "path": "disk.vhdx", "pool": src}
        a.create_volume(vid, "disk.vhdx", src, 4096)
        _, vm = a.register_vm("i-2-5-VM", "vm-1", [volume])
        other = str(uuid.uuid4())
        a.create_volume(other, "other.vhdx", src, 4096)
        _, mv = a.submit(migrate_body(other, "other.vhdx", src, dst))
        body = mws_body("i-2-5-VM", "vm-1", "hv-b", server.base_url("hv-b"), [(volume, dst)])
        a.submit(body)
        records = [a.wait_for_state(mv["id"]), a.wait_for_state(body["id"])]
        answers = [a.status()[1], vm, a.request("GET", f"/volumes/{vid}?checksum=1")[1],
                   a.writes(vid)[1], a.request("GET", "/pools")[1]["pools"][0]]

    fields = set()
    for answer in records + answers:
        fields |= set(answer)
    fields |= set(records[1]["volumes"][0]) | set(records[1]["result"]) | set(records[1]["result"]["volumeTos"][0])
    fields |= set(answers[2]["locations"][0]) | set(answers[3]["check"]) | set(vm["volumes"][0])
    fields |= set(parse_fault({"type": "slow", "bandwidth": 1})) | set(parse_fault({"type": "delay", "seconds": 1}))
    assert sorted(f for f in fields if not documented(f)) == []
