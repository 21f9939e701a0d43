"""The log every motion process writes (``motion --log-format``): JSON lines carrying the job,
volume, VM, host and pool they concern, readable text at a terminal, and the suitability
decisions of the management server."""
from __future__ import annotations

import io
import json
import logging

import pytest

from orchestrator import logcontext, logformat


@pytest.fixture
def logged():
    """Log lines written through motion's handler, in JSON, while the test runs."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    out = io.StringIO()
    logformat.configure("worker", "INFO", "json", stream=out)
    yield lambda: [json.loads(line) for line in out.getvalue().splitlines()]
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_json_line_names_its_service_level_logger_and_the_job_bound_around_it(logged):
    with logcontext.bound(job="j-1", volume=["v-1"], host="hv-a1", pool=["p-1", "p-2"], vm=None):
        logging.getLogger("orchestrator.runner").info("job %s dispatched", "j-1")
    logging.getLogger("orchestrator.runner").info("after the job")
    inside, outside = logged()
    assert (inside["service"], inside["level"], inside["logger"]) == ("worker", "INFO", "orchestrator.runner")
    assert inside["msg"] == "job j-1 dispatched"
    assert (inside["job"], inside["volume"], inside["host"]) == ("j-1", "v-1", "hv-a1")
    assert inside["pool"] == ["p-1", "p-2"]
    assert "vm" not in inside
    assert "job" not in outside and inside["ts"].endswith("Z")


def test_fields_given_to_one_call_win_over_the_bound_ones(logged):
    with logcontext.bound(job="outer"):
        logging.getLogger("x").info("inner", extra={"job": "inner", "command": "migrateVolume"})
    [line] = logged()
    assert (line["job"], line["command"]) == ("inner", "migrateVolume")


def test_an_exception_is_kept_in_the_line(logged):
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("x").exception("it failed")
    [line] = logged()
    assert "ValueError: boom" in line["exc"]


def test_text_form_appends_the_fields_for_people_at_a_terminal():
    formatter = logformat.TextFormatter()
    record = logging.LogRecord("orchestrator.runner", logging.INFO, __file__, 1, "job %s ok", ("j-1",), None)
    record.job, record.volume = "j-1", ["v-1", "v-2"]
    assert formatter.format(record).endswith("orchestrator.runner: job j-1 ok [job=j-1 volume=v-1,v-2]")


def test_auto_format_is_json_unless_the_stream_is_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert logformat.wants_json("auto", io.StringIO())
    assert not logformat.wants_json("auto", Tty())
    assert not logformat.wants_json("text", io.StringIO()) and logformat.wants_json("json", Tty())


def test_configuring_twice_keeps_one_motion_handler():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        logformat.configure("api", "INFO", "json", stream=io.StringIO())
        logformat.configure("api", "INFO", "json", stream=io.StringIO())
        assert sum(1 for h in root.handlers if getattr(h, "_motion_handler", False)) == 1
        assert logformat.configured()
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_a_decision_names_every_candidate_and_why_the_unsuitable_ones_are_not(logged):
    logcontext.log_decision("pools", "volume web-1-root", [
        {"name": "a-gold-2", "suitable": True, "reasons": []},
        ("a-silver", False, ["storage tags do not match"]),
        ("zone-bulk", False, "pool zone-bulk is in maintenance"),
    ], chosen="a-gold-2", volume="v-1")
    [line] = logged()
    assert line["logger"] == "motion.decisions" and line["decision"] == "pools"
    assert line["msg"] == ("suitability of pools for volume web-1-root: 3 considered, 1 suitable (a-gold-2); "
                           "chosen: a-gold-2; not suitable: a-silver: storage tags do not match; "
                           "zone-bulk: pool zone-bulk is in maintenance")
    assert line["candidates"][2] == {"name": "zone-bulk", "suitable": False,
                                     "reasons": ["pool zone-bulk is in maintenance"]}
    assert (line["volume"], line["considered"], line["suitable"], line["chosen"]) == ("v-1", 3, 1, "a-gold-2")


def test_a_decision_over_thousands_of_candidates_stays_one_bounded_line(logged):
    extra = logcontext.log_decision("hosts", "VM big", [(f"h{i}", False, ["busy"]) for i in range(5000)])
    [line] = logged()
    assert "and 4980 more" in line["msg"] and len(line["msg"]) < 2000
    assert len(extra["candidates"]) == logcontext.MAX_STRUCTURED and extra["truncated"] is True
