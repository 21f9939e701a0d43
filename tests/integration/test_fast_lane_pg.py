"""The fast lane (``api.fast``) answers signed GETs as the Flask app would, without Flask, and
hands everything else to the Flask app unchanged."""
import logging
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from api import create_app
from api.fast import Lane
from api.observability import REQUESTS
from api.signing import sign_pairs
from orchestrator import models
from orchestrator.config import Settings
from tests.helpers import count, small_with_keys, volume_row

pytestmark = pytest.mark.postgres


def signed(key, secret=None, **params):
    expires = (datetime.now(timezone.utc) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S%z")
    pairs = [(k, str(v)) for k, v in params.items()]
    pairs += [("apiKey", key["apikey"]), ("signatureVersion", "3"), ("expires", expires)]
    return pairs + [("signature", sign_pairs(pairs, secret or key["secretkey"]))]


class Lanes:
    """The app as served (lane in front) and the same app without the lane; counts the requests
    that reached Flask and those the lane answered through the app's ``respond``."""

    def __init__(self, app):
        self.app, self.lane = app, app.wsgi_app
        assert isinstance(self.lane, Lane)
        self.flask_calls = self.respond_calls = 0
        inner, answer = self.lane.wsgi_app, self.lane.answer

        def counted(environ, start_response):
            self.flask_calls += 1
            return inner(environ, start_response)

        def counted_answer(*args, **kwargs):
            self.respond_calls += 1
            return answer(*args, **kwargs)
        self.lane.wsgi_app, self.lane.answer = counted, counted_answer

    def get(self, pairs, lane=True, cookie=None):
        self.app.wsgi_app = self.lane if lane else self.lane.wsgi_app
        client = self.app.test_client()
        if cookie:
            client.set_cookie(*cookie)
        try:
            response = client.get("/client/api", query_string=pairs)
        finally:
            self.app.wsgi_app = self.lane
        return response.status_code, response.get_json(), response.headers.get("Content-Type")


@pytest.fixture
def env(pg_url):
    db, admin, user = small_with_keys(pg_url)
    app = create_app(Settings(database_url=pg_url), db, lambda job_id: None)
    lanes = Lanes(app)
    with db.uow() as uow:
        dest = uow.session.scalar(select(models.StoragePool.uuid).where(models.StoragePool.name == "c1-gold-2"))
    before = lanes.flask_calls
    status, body, _ = lanes.get(signed(admin, command="migrateVolume", volumeid=volume_row(db, "vm1-root").uuid,
                                       storageid=dest, livemigrate="true"))
    assert status == 200 and lanes.flask_calls == before, body
    yield {"db": db, "lanes": lanes, "admin": admin, "user": user, "dest": dest,
           "job": body["migratevolumeresponse"]["jobid"]}
    db.dispose()


@pytest.mark.parametrize("spelled", [str.lower, str.upper])
def test_a_signed_poll_is_answered_by_the_lane_itself_exactly_as_flask_answers_it(env, spelled):
    lanes, admin, job = env["lanes"], env["admin"], env["job"]
    flask, respond = lanes.flask_calls, lanes.respond_calls
    fast = lanes.get(signed(admin, command="queryAsyncJobResult", jobid=spelled(job)))
    assert (lanes.flask_calls, lanes.respond_calls) == (flask, respond), "not the poll's own path"
    slow = lanes.get(signed(admin, command="queryAsyncJobResult", jobid=spelled(job)), lane=False)
    assert fast == slow
    status, body, content_type = fast
    assert status == 200 and content_type == "application/json; charset=UTF-8"
    answer = body["queryasyncjobresultresponse"]
    assert answer["jobid"] == job and answer["jobstatus"] == 0 and answer["queueposition"] == 1


CASES = {  # what each request answers, with and without the lane
    "bad signature": 401, "unknown job": 431, "another account's job": 531, "no jobid": 431,
    "not a uuid": 431, "bad expires": 401, "another command": 200, "a refused submission": 431,
    "a bad parameter": 431,
}


def _case(env, case):
    admin, user, job = env["admin"], env["user"], env["job"]
    return {
        "bad signature": signed(admin, secret="x" * 40, command="queryAsyncJobResult", jobid=job),
        "unknown job": signed(admin, command="queryAsyncJobResult", jobid=str(uuid.uuid4())),
        "another account's job": signed(user, command="queryAsyncJobResult", jobid=job),
        "no jobid": signed(admin, command="queryAsyncJobResult"),
        "not a uuid": signed(admin, command="queryAsyncJobResult", jobid="12"),
        "bad expires": [(k, "2001-01-01T00:00:00+0000" if k == "expires" else v)
                        for k, v in signed(admin, command="queryAsyncJobResult", jobid=job)],
        "another command": signed(admin, command="listAsyncJobs", keyword="queryAsyncJobResult"),
        "a refused submission": signed(admin, command="migrateVolume", volumeid=str(uuid.uuid4()),
                                       storageid=env["dest"], livemigrate="true"),
        "a bad parameter": signed(admin, command="listVolumes", name="a\x01b"),
    }[case]


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_other_signed_get_is_answered_by_the_lane_through_respond_as_flask_answers_it(env, case):
    lanes, pairs = env["lanes"], _case(env, case)
    flask = lanes.flask_calls
    through_lane = lanes.get(pairs)
    assert lanes.flask_calls == flask, "a signed GET reached Flask"
    assert through_lane == lanes.get(pairs, lane=False)
    assert through_lane[0] == CASES[case], through_lane[1]


@pytest.mark.parametrize("case", ["unsigned (a session)", "with a cookie", "login", "a POST", "another path"])
def test_what_is_not_a_signed_get_goes_to_flask(env, case):
    lanes, admin, job = env["lanes"], env["admin"], env["job"]
    poll = signed(admin, command="queryAsyncJobResult", jobid=job)
    flask = lanes.flask_calls
    client = lanes.app.test_client()
    if case == "unsigned (a session)":
        assert lanes.get([("command", "queryAsyncJobResult"), ("jobid", job)])[0] == 401
    elif case == "with a cookie":
        assert lanes.get(poll, cookie=("JSESSIONID", "abc"))[0] == 200
    elif case == "login":
        assert lanes.get([("command", "login"), ("username", "nobody"), ("password", "x"),
                          ("apikey", "k"), ("signature", "s")])[0] == 531  # CloudStack's login failure
    elif case == "a POST":
        assert client.post("/client/api", data=dict(poll)).status_code == 200
    else:
        assert client.get("/health").status_code == 200
    assert lanes.flask_calls == flask + 1


def test_a_submission_through_the_lane_records_one_job_and_no_audit_event(env):
    assert count(env["db"], models.AsyncJob) == 1  # the fixture's, through the lane
    with env["db"].uow() as uow:
        assert uow.session.scalar(select(models.Event).where(models.Event.type == "API.migrateVolume")) is None


def test_the_lane_counts_and_logs_its_answers_and_a_refusal_is_logged_once(env, caplog):
    lanes, admin, job = env["lanes"], env["admin"], env["job"]
    counter = REQUESTS.labels("queryAsyncJobResult", "200")
    before = counter._value.get()
    with caplog.at_level(logging.DEBUG, logger="api.requests"):
        assert lanes.get(signed(admin, command="queryAsyncJobResult", jobid=job))[0] == 200
    assert counter._value.get() == before + 1
    [line] = [r for r in caplog.records if r.name == "api.requests"]
    assert line.command == "queryAsyncJobResult" and line.code == 200 and line.job == job
    caplog.clear()
    refused = REQUESTS.labels("queryAsyncJobResult", "401")
    before = refused._value.get()
    with caplog.at_level(logging.INFO):
        assert lanes.get(signed(admin, secret="y" * 40, command="queryAsyncJobResult", jobid=job))[0] == 401
    assert len([r for r in caplog.records if "bad signature" in r.getMessage()]) == 1
    assert refused._value.get() == before + 1
    [line] = [r for r in caplog.records if r.name == "api.requests"]
    assert line.code == 401 and line.job == job
