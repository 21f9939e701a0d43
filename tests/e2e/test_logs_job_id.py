"""One job can be followed through the logs of the API, the worker and the agent by its id: each
process writes JSON lines (its output is not a terminal) that carry the job's UUID in ``job``."""
from __future__ import annotations

import json

import pytest

from tests.e2e.flow import pick_shared_volume

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]


def json_lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # gunicorn's and Celery's own banners are not ours
        if isinstance(record, dict):
            out.append(record)
    return out


def test_a_job_id_is_on_the_log_lines_of_the_api_the_worker_and_the_agent(stack):
    vm, volume, dest = pick_shared_volume(stack.api)
    job = stack.api.migrateVolume(volumeid=volume["id"], storageid=dest["id"], livemigrate=True)
    stack.api._jobresult(job["jobid"])
    jobid = job["jobid"]

    api, worker, agent = (json_lines(stack.procs.log(name)) for name in ("api", "worker0", "agent"))
    api_lines = [r for r in api if r.get("job") == jobid]
    assert any(r["msg"].startswith(f"job {jobid} accepted") and r["volume"] == volume["id"]
               and r["pool"] == dest["name"] and r["vm"] == vm["name"] for r in api_lines), api_lines
    assert any(r["logger"] == "api.requests" and r["command"] == "migrateVolume" for r in api_lines)
    worker_lines = [r for r in worker if r.get("job") == jobid]
    assert any("succeeded" in r["msg"] and r["host"] == vm["hostname"] and r["pool"] == dest["name"]
               for r in worker_lines), worker_lines
    agent_lines = [r for r in agent if r.get("job") == jobid]
    assert any(r["logger"] == "agent.commands" and r["host"] == vm["hostname"] for r in agent_lines), agent_lines
    assert {r["service"] for r in api_lines + worker_lines + agent_lines} == {"api", "worker", "agent"}


def test_the_management_log_records_the_suitability_decision_and_why_a_pool_was_refused(stack):
    vm, volume, _ = pick_shared_volume(stack.api)
    pools = stack.api.findStoragePoolsForMigration(id=volume["id"])["storagepool"]
    unsuitable = [p for p in pools if not p["suitableformigration"]]
    assert unsuitable, "the demo inventory has an unsuitable pool for this volume"
    try:
        stack.api.migrateVolume(volumeid=volume["id"], storageid=unsuitable[0]["id"], livemigrate=True)
    except Exception:
        pass  # refused with 431, as it should be
    decisions = [r for r in json_lines(stack.procs.log("api")) if r.get("decision") == "pools"
                 and r.get("volume") == volume["id"]]
    assert decisions, "no decision line"
    [candidate] = decisions[-1]["candidates"]
    assert candidate["name"] == unsuitable[0]["name"] and candidate["suitable"] is False
    assert candidate["reasons"] == unsuitable[0]["reasons"]
    refusals = [r for r in json_lines(stack.procs.log("api")) if r.get("logger") == "api.requests"
                and r.get("code") == 431]
    assert any(unsuitable[0]["name"] in r["msg"] for r in refusals)
