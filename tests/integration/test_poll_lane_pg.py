"""The poll's fast lane (``api.fast``) answers signed polls as the Flask app would, and hands
everything it would not answer with the job to the Flask app, unchanged."""
import logging
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from api import create_app
from api.fast import PollLane
from api.observability import REQUESTS
from api.signing import sign_pairs
from orchestrator import models
from orchestrator.config import Settings
from tests.helpers import small_with_keys, volume_row

pytestmark = pytest.mark.postgres


def signed(key, secret=None, **params):
    expires = (datetime.now(timezone.utc) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S%z")
    pairs = [(k, str(v)) for k, v in params.items()]
    pairs += [("apiKey", key["apikey"]), ("signatureVersion", "3"), ("expires", expires)]
    return pairs + [("signature", sign_pairs(pairs, secret or key["secretkey"]))]


class Lanes:
    """The app as served (lane in front) and the same app without the lane."""

    def __init__(self, app):
        self.app, self.lane = app, app.wsgi_app
        assert isinstance(self.lane, PollLane)
        self.flask_calls = 0
        inner = self.lane.wsgi_app

        def counted(environ, start_response):
            self.flask_calls += 1
            return inner(environ, start_response)
        self.lane.wsgi_app = counted

    def get(self, pairs, lane=True):
        self.app.wsgi_app = self.lane if lane else self.lane.wsgi_app
        try:
            response = self.app.test_client().get("/client/api", query_string=pairs)
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
    status, body, _ = lanes.get(signed(admin, command="migrateVolume", volumeid=volume_row(db, "vm1-root").uuid,
                                       storageid=dest, livemigrate="true"))
    assert status == 200, body
    yield {"lanes": lanes, "admin": admin, "user": user, "job": body["migratevolumeresponse"]["jobid"]}
    db.dispose()


@pytest.mark.parametrize("spelled", [str.lower, str.upper])
def test_a_signed_poll_is_answered_by_the_lane_exactly_as_flask_answers_it(env, spelled):
    lanes, admin, job = env["lanes"], env["admin"], env["job"]
    before = lanes.flask_calls
    fast = lanes.get(signed(admin, command="queryAsyncJobResult", jobid=spelled(job)))
    assert lanes.flask_calls == before, "the fast lane handed a good poll to Flask"
    slow = lanes.get(signed(admin, command="queryAsyncJobResult", jobid=spelled(job)), lane=False)
    assert fast == slow
    status, body, content_type = fast
    assert status == 200 and content_type == "application/json; charset=UTF-8"
    answer = body["queryasyncjobresultresponse"]
    assert answer["jobid"] == job and answer["jobstatus"] == 0 and answer["queueposition"] == 1


@pytest.mark.parametrize("case", ["bad signature", "unknown job", "another account's job", "no jobid",
                                  "not a uuid", "bad expires", "session cookie only", "another command"])
def test_what_the_lane_does_not_answer_goes_to_flask_unchanged(env, case):
    lanes, admin, user, job = env["lanes"], env["admin"], env["user"], env["job"]
    pairs = {
        "bad signature": signed(admin, secret="x" * 40, command="queryAsyncJobResult", jobid=job),
        "unknown job": signed(admin, command="queryAsyncJobResult", jobid=str(uuid.uuid4())),
        "another account's job": signed(user, command="queryAsyncJobResult", jobid=job),
        "no jobid": signed(admin, command="queryAsyncJobResult"),
        "not a uuid": signed(admin, command="queryAsyncJobResult", jobid="12"),
        "another command": signed(admin, command="listAsyncJobs", keyword="queryAsyncJobResult"),
        "bad expires": [(k, "2001-01-01T00:00:00+0000" if k == "expires" else v)
                        for k, v in signed(admin, command="queryAsyncJobResult", jobid=job)],
        "session cookie only": [("command", "queryAsyncJobResult"), ("jobid", job)],
    }[case]
    before = lanes.flask_calls
    through_lane = lanes.get(pairs)
    assert lanes.flask_calls == before + 1, "the lane answered what it should have handed over"
    assert through_lane == lanes.get(pairs, lane=False)
    status, body, _ = through_lane
    expected = {"bad signature": 401, "unknown job": 431, "another account's job": 531, "no jobid": 431,
                "not a uuid": 431, "bad expires": 401, "session cookie only": 401, "another command": 200}[case]
    assert status == expected, body


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
    with caplog.at_level(logging.INFO):
        assert lanes.get(signed(admin, secret="y" * 40, command="queryAsyncJobResult", jobid=job))[0] == 401
    assert len([r for r in caplog.records if "bad signature" in r.getMessage()]) == 1
