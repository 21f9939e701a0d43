"""The client subcommands against a fake API: what they send, what they print, how they exit
(0 done, 1 failed or refused, 2 usage)."""
from __future__ import annotations

import json
import logging

import pytest

from motion import cli, client_cli
from motion.client import ApiError

VOL = "11111111-1111-4111-8111-111111111111"
VOL2 = "22222222-2222-4222-8222-222222222222"
POOL = "33333333-3333-4333-8333-333333333333"
VM = "44444444-4444-4444-8444-444444444444"
HOST = "55555555-5555-4555-8555-555555555555"
JOB = "66666666-6666-4666-8666-666666666666"

OBJECTS = {
    "listVolumes": ("volume", [{"id": VOL, "name": "web-1-root", "virtualmachineid": VM},
                               {"id": VOL2, "name": "web-1-data", "virtualmachineid": VM}]),
    "listStoragePools": ("storagepool", [{"id": POOL, "name": "a-gold-2"}]),
    "listVirtualMachines": ("virtualmachine", [{"id": VM, "name": "web-1"}]),
    "listHosts": ("host", [{"id": HOST, "name": "hv-b1"}, {"id": "77777777-7777-4777-8777-777777777777",
                                                           "name": "twin"},
                           {"id": "88888888-8888-4888-8888-888888888888", "name": "twin"}]),
}


class FakeApi:
    """Answers like the API; ``outcomes`` are the successive queryAsyncJobResult answers."""

    def __init__(self, outcomes=None, refuse=None):
        self.calls: list[tuple[str, dict]] = []
        self.outcomes = list(outcomes or [{"jobid": JOB, "jobstatus": 1, "jobresult": {}}])
        self.refuse = refuse or {}

    def call(self, command, **params):
        self.calls.append((command, params))
        if command in self.refuse:
            raise ApiError(*self.refuse[command])
        if command == "queryAsyncJobResult":
            return self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if command.startswith("migrate"):
            return {"jobid": JOB}
        if command == "updateConfiguration":
            return {"configuration": {"name": params["name"], "value": params["value"], "defaultvalue": "1800"}}
        return {}

    def list_all(self, command, key, **params):
        self.calls.append((command, params))
        if command in self.refuse:
            raise ApiError(*self.refuse[command])
        if command == "listAsyncJobs":
            return [{"jobid": JOB, "jobstatus": 0, "cmd": "a.B.MigrateVolumeCmdByAdmin", "phase": "queued",
                     "queueposition": 1, "bytesdone": 0, "bytestotal": 10},
                    {"jobid": "done", "jobstatus": 1, "cmd": "a.B.MigrateVolumeCmdByAdmin", "jobprocstatus": 100}]
        if command == "listConfigurations":
            rows = [{"name": "wait", "value": "1800", "defaultvalue": "1800"}]
            return [r for r in rows if r["name"] == params.get("name", r["name"])]
        if command == "findStoragePoolsForMigration":
            return [{"id": POOL, "name": "a-gold-2", "suitableformigration": True},
                    {"id": "p2", "name": "a-silver", "suitableformigration": False, "reasons": ["tags"]}]
        if command == "findHostsForMigration":
            return [{"id": HOST, "name": "hv-b1", "suitableformigration": True, "requiresStorageMotion": True}]
        _, objects = OBJECTS[command]
        return [o for o in objects if all(o.get(k) == v for k, v in params.items())]


@pytest.fixture
def api(monkeypatch):
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level  # cli.main sets logging up; put it back after
    fake = FakeApi()
    monkeypatch.setattr(client_cli, "client", lambda args: fake)
    yield fake
    root.handlers[:] = handlers
    root.setLevel(level)


def run(*argv: str) -> int:
    return cli.main(list(argv))


def test_migrate_volume_resolves_names_and_prints_the_job_id_as_json(api, capsys):
    assert run("migrate", "volume", "web-1-root", "a-gold-2", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"jobid": JOB}
    assert ("migrateVolume", {"volumeid": VOL, "storageid": POOL, "livemigrate": "true"}) in api.calls


def test_migrate_volume_accepts_uuids_and_prints_a_parseable_line_when_not_a_terminal(api, capsys):
    assert run("migrate", "volume", VOL, POOL) == 0
    assert capsys.readouterr().out == f"job={JOB}\n"


def test_migrate_vm_sends_the_volume_to_pool_map(api, capsys):
    assert run("migrate", "vm", "web-1", "hv-b1", "--map", "web-1-data=a-gold-2", "--json") == 0
    [(_, params)] = [c for c in api.calls if c[0] == "migrateVirtualMachineWithVolume"]
    assert params == {"virtualmachineid": VM, "hostid": HOST, "migrateto[0].volume": VOL2,
                      "migrateto[0].pool": POOL}


def test_a_map_entry_that_is_not_volume_equals_pool_is_a_usage_error(api, capsys):
    assert run("migrate", "vm", "web-1", "hv-b1", "--map", "web-1-data") == 2
    assert "VOLUME=POOL" in capsys.readouterr().err


def test_a_name_that_matches_nothing_or_several_objects_is_a_usage_error(api, capsys):
    assert run("migrate", "volume", "nope", "a-gold-2") == 2
    assert "no volume named 'nope'" in capsys.readouterr().err
    assert run("migrate", "vm", "web-1", "twin") == 2
    assert "2 hosts are named 'twin'" in capsys.readouterr().err


def test_migrate_with_wait_exits_0_when_the_job_succeeds(api, capsys):
    api.outcomes = [{"jobid": JOB, "jobstatus": 0, "phase": "queued", "queueposition": 1},
                    {"jobid": JOB, "jobstatus": 0, "phase": "dispatched", "bytesdone": 5, "bytestotal": 10},
                    {"jobid": JOB, "jobstatus": 1, "jobresult": {"volume": {"id": VOL}}}]
    assert run("migrate", "volume", "web-1-root", "a-gold-2", "--wait", "--json", "--interval", "0") == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["jobstatus"] for line in lines] == [0, 0, 1]


def test_watching_a_failed_job_exits_1_with_the_error_on_stderr(api, capsys):
    api.outcomes = [{"jobid": JOB, "jobstatus": 0, "phase": "dispatched", "cmd": "a.MigrateVolumeCmdByAdmin"},
                    {"jobid": JOB, "jobstatus": 2, "jobresultcode": 530,
                     "jobresult": {"errorcode": 530, "errortext": "the agent reported: disk on fire"}}]
    assert run("jobs", "watch", JOB, "--interval", "0") == 1
    captured = capsys.readouterr()
    assert "result=failed code=530" in captured.out
    assert "disk on fire" in captured.err


def test_an_api_refusal_exits_1_with_the_api_text(api, capsys):
    api.refuse = {"updateConfiguration": (431, "Invalid value 'abc' for configuration wait")}
    assert run("config", "set", "wait", "abc") == 1
    assert "refused (431): Invalid value 'abc'" in capsys.readouterr().err


def test_an_unreachable_api_exits_1(api, capsys):
    api.refuse = {"queryAsyncJobResult": (0, "cannot reach the API at http://x/client/api")}
    assert run("jobs", "show", JOB) == 1
    assert "cannot reach the API" in capsys.readouterr().err


def test_jobs_list_filters_by_status_and_prints_json(api, capsys):
    assert run("jobs", "list", "--status", "pending", "--json") == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["jobid"] == JOB


def test_jobs_list_prints_a_table_with_phase_and_queue_position(api, capsys):
    assert run("jobs", "list") == 0
    header, first, second = capsys.readouterr().out.splitlines()
    assert header.split() == ["JOBID", "COMMAND", "STATUS", "PHASE", "PROGRESS", "QUEUE", "CREATED"]
    assert first.split()[:6] == [JOB, "MigrateVolumeCmdByAdmin", "pending", "queued", "0%", "1"]
    assert second.split()[2] == "succeeded"


def test_jobs_show_prints_the_answer_as_json(api, capsys):
    assert run("jobs", "show", JOB, "--json") == 0
    assert json.loads(capsys.readouterr().out)["jobstatus"] == 1


def test_pools_for_and_hosts_for_list_suitability_with_reasons(api, capsys):
    assert run("pools", "for", "web-1-root") == 0
    out = capsys.readouterr().out
    assert "a-gold-2" in out and "a-silver" in out and "tags" in out
    assert run("hosts", "for", "web-1", "--json") == 0
    assert json.loads(capsys.readouterr().out)[0]["requiresStorageMotion"] is True


def test_config_get_and_set_go_through_the_api(api, capsys):
    assert run("config", "get", "wait", "--json") == 0
    assert json.loads(capsys.readouterr().out)["value"] == "1800"
    assert run("config", "set", "wait", "900") == 0
    assert capsys.readouterr().out.startswith("wait = 900")
    assert run("config", "get", "nope") == 2


def test_every_subcommand_has_help():
    commands = [["up"], ["demo"], ["serve"], ["worker"], ["beat"], ["agent"], ["db"], ["inventory"], ["keys"],
                ["users"], ["jobs", "list"], ["jobs", "show"], ["jobs", "watch"], ["migrate", "volume"],
                ["migrate", "vm"], ["pools", "for"], ["hosts", "for"], ["config", "get"], ["config", "set"]]
    for command in commands:
        with pytest.raises(SystemExit) as exited:
            cli.build_parser().parse_args([*command, "--help"])
        assert exited.value.code == 0, command


def test_a_missing_argument_is_a_usage_error_with_exit_code_2():
    for argv in (["jobs", "show"], ["migrate", "vm", "web-1"], ["jobs"], ["nonsense"]):
        with pytest.raises(SystemExit) as exited:
            cli.build_parser().parse_args(argv)
        assert exited.value.code == 2, argv
