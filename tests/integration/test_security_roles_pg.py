"""Authorisation on PostgreSQL: each role against each registered command, jobs visible only to
their owners (and admins), and every change recorded as an event naming the caller.

The table is read from ``api.registry.COMMANDS`` at run time, so commands added later are
covered by the same rules: a root-admin command answers anyone else CloudStack's 432 "not
available" and changes nothing; any other command never answers 432 to a signed caller.
"""
from __future__ import annotations

import pytest
from sqlalchemy import select

from api.registry import COMMANDS, command
from orchestrator import models
from tests.integration.test_security_auth_pg import env, snapshot  # noqa: F401  (fixture)

pytestmark = pytest.mark.postgres

ROOT_ADMIN_ONLY_BY_ISSUE = {"findStoragePoolsForMigration", "findHostsForMigration", "migrateVolume",
                            "migrateVirtualMachineWithVolume", "migrateVirtualMachine", "cancelAsyncJob"}
CALLER_ERRORS = {531, 532, 533, 534, 535, 536, 537}  # CloudStack's answers about the request, not faults


def must_be_root_admin_only(name: str) -> bool:
    """The issue: the storage-motion commands, job cancelling, configuration and event commands."""
    return name in ROOT_ADMIN_ONLY_BY_ISSUE or "Configuration" in name or "Event" in name


def uuid_of(db, model, name: str) -> str:
    with db.uow() as uow:
        return uow.session.scalar(select(model.uuid).where(model.name == name))


def plausible_params(db) -> dict:
    """Valid values for the usual parameter names, so that a refusal is about the role alone."""
    volume = uuid_of(db, models.Volume, "vm1-root")
    return {"id": volume, "volumeid": volume, "storageid": uuid_of(db, models.StoragePool, "c1-gold-2"),
            "virtualmachineid": uuid_of(db, models.VirtualMachine, "vm1"),
            "hostid": uuid_of(db, models.Host, "h2"), "livemigrate": "true",
            "zoneid": uuid_of(db, models.Zone, "z1"), "name": "wait", "value": "60"}


def test_the_commands_the_issue_names_are_root_admin_only_whenever_they_are_registered():
    assert {"findStoragePoolsForMigration", "migrateVolume"} <= set(COMMANDS)
    wrong = sorted(n for n, c in COMMANDS.items() if must_be_root_admin_only(n) and not c.admin_only)
    assert wrong == []


def test_each_role_against_each_registered_command(env):
    params = plausible_params(env["db"])
    problems = []
    for name in sorted(COMMANDS):
        cmd = COMMANDS[name]
        for role in ("user", "domainadmin", "admin"):  # the root admin last: it may change things
            before = snapshot(env["db"])
            status, body = env[role].call(name, **params)
            refused = cmd.admin_only and role != "admin"
            if refused:
                error = (body or {}).get("errorresponse", {})
                if status != 432 or "not available for user" not in error.get("errortext", ""):
                    problems.append(f"{role} {name}: expected 432 not available, got {status} {body}")
                if snapshot(env["db"]) != before:
                    problems.append(f"{role} {name}: refused but the database changed")
            elif status == 432 or (status >= 500 and status not in CALLER_ERRORS):
                problems.append(f"{role} {name}: expected an answer for this role, got {status} {body}")
    assert problems == []


def test_users_see_only_their_own_jobs_and_admins_see_all(env):
    params = plausible_params(env["db"])
    status, body = env["admin"].call("migrateVolume", volumeid=params["volumeid"],
                                     storageid=params["storageid"], livemigrate="true")
    assert status == 200
    jobid = body["migratevolumeresponse"]["jobid"]
    assert env["user"].call("listAsyncJobs") == (200, {"listasyncjobsresponse": {}})
    status, body = env["user"].call("queryAsyncJobResult", jobid=jobid)
    assert status == 531 and body["queryasyncjobresultresponse"]["errorcode"] == 531
    for role in ("admin", "domainadmin"):
        listed = env[role].call("listAsyncJobs")[1]["listasyncjobsresponse"]
        assert [j["jobid"] for j in listed["asyncjobs"]] == [jobid]


def test_a_migration_is_recorded_as_an_event_of_its_caller(env):
    params = plausible_params(env["db"])
    env["admin"].call("migrateVolume", volumeid=params["volumeid"], storageid=params["storageid"],
                      livemigrate="true")
    with env["db"].uow() as uow:
        events = uow.session.scalars(select(models.Event)).all()
        admin = uow.session.scalar(select(models.User).where(
            models.User.api_key == env["keys"]["admin"]["apikey"]))
        assert [(e.type, e.state, e.user_id, e.account_id) for e in events] == [
            ("VOLUME.MIGRATE", "Scheduled", admin.id, admin.account_id)]


@pytest.fixture
def renaming_command():
    """A mutating command that records no event itself, registered for one test only."""
    name = "renameZoneForSecurityTest"

    @command(name, admin_only=True)
    def rename(ctx):
        zone = ctx.session.scalar(select(models.Zone).where(models.Zone.name == "z1"))
        zone.name = ctx.params.required("newname")
        ctx.session.commit()
        return {"success": True}

    yield name
    COMMANDS.pop(name)


def test_a_change_without_an_event_of_its_own_is_recorded_with_the_caller_and_no_credentials(
        env, renaming_command):
    assert env["admin"].call("listZones")[0] == 200
    status, _ = env["admin"].call(renaming_command, newname="z9", password="hunter2")
    assert status == 200
    with env["db"].uow() as uow:
        [event] = uow.session.scalars(select(models.Event)).all()
        admin = uow.session.scalar(select(models.User).where(
            models.User.api_key == env["keys"]["admin"]["apikey"]))
        assert (event.type, event.user_id, event.account_id) == (
            f"API.{renaming_command}", admin.id, admin.account_id)
        assert "newname=z9" in event.description and "hunter2" not in event.description
        assert env["keys"]["admin"]["secretkey"] not in event.description
