"""How ``motion jobs watch`` shows a running job: bars on a terminal, one parseable line per change
otherwise, JSON lines with ``--json``; and the exit code of the outcome."""
from __future__ import annotations

import io
import json

from motion import progress

JOB = "6f1c2a4e-1111-4222-8333-944455556666"


def pending(done=0, total=4 * 1024 * 1024, phase="dispatched", **extra) -> dict:
    return {"jobid": JOB, "jobstatus": 0, "cmd": "x.MigrateVolumeCmdByAdmin", "phase": phase,
            "bytesdone": done, "bytestotal": total, "rate": 1048576.0, "eta": 2.0, **extra}


def finished(status=1, text=None) -> dict:
    job = {"jobid": JOB, "jobstatus": status, "jobresultcode": 530 if status == 2 else 0}
    if status == 2:
        job["jobresult"] = {"errorcode": 530, "errortext": text}
    return job


def words(line: str) -> dict:
    out = {}
    for word in line.split(" "):
        key, _, value = word.partition("=")
        out[key] = value
    return out


def test_plain_output_is_one_key_value_line_per_change_and_nothing_when_nothing_changed():
    out = io.StringIO()
    view = progress.JobView(out, "plain")
    assert view.show(pending(phase="queued", done=0, queueposition=2, statustext="waiting: host busy"))
    assert not view.show(pending(phase="queued", done=0, queueposition=2, statustext="waiting: host busy"))
    assert view.show(pending(done=1048576))
    view.done(finished())
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    first, second = words(lines[0]), words(lines[1])
    assert (first["job"], first["phase"], first["queue"]) == (JOB, "queued", "2")
    assert json.loads(lines[0].split("status_text=")[1]) == "waiting: host busy"
    assert (second["done"], second["total"], second["percent"]) == ("1048576", "4194304", "25")
    assert second["queue"] == "-"
    assert lines[2] == f"job={JOB} result=succeeded"


def test_plain_output_of_a_vm_job_has_a_line_per_volume_named_when_the_name_is_known():
    out = io.StringIO()
    vols = [{"id": "v1", "bytesDone": 10, "bytesTotal": 20, "state": "copying"},
            {"id": "v2", "bytesDone": 0, "bytesTotal": 0, "state": "stays"}]
    progress.JobView(out, "plain", names={"v1": "db-1-root"}).show(pending(volumes=vols))
    _, one, two = out.getvalue().splitlines()
    assert words(one) == {"job": JOB, "volume": "db-1-root", "done": "10", "total": "20", "state": "copying"}
    assert words(two)["volume"] == "v2" and words(two)["state"] == "stays"


def test_a_failed_job_ends_with_its_code_and_error_text():
    out = io.StringIO()
    view = progress.JobView(out, "plain")
    view.done(finished(2, "Failed to migrate volume v: the agent reported: disk on fire"))
    line = out.getvalue().strip()
    assert line.startswith(f"job={JOB} result=failed code=530 error=")
    assert json.loads(line.split("error=", 1)[1]) == "Failed to migrate volume v: the agent reported: disk on fire"


def test_json_output_is_the_api_answer_per_change_and_the_finished_job_last():
    out = io.StringIO()
    view = progress.JobView(out, "json")
    view.show(pending(done=0))
    view.show(pending(done=0))
    view.show(pending(done=2048))
    view.done(finished())
    objects = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [o["jobstatus"] for o in objects] == [0, 0, 1]
    assert objects[1]["bytesdone"] == 2048 and objects[-1] == finished()


def test_a_terminal_gets_bars_redrawn_in_place_and_a_complete_last_picture():
    out = io.StringIO()
    view = progress.JobView(out, "tty", label="volume web-1-root -> pool a-gold-2")
    view.show(pending(done=1048576))
    view.show(pending(done=2097152))
    view.done(finished())
    text = out.getvalue()
    assert "volume web-1-root -> pool a-gold-2" in text and "[" in text and "%" in text
    assert "\x1b[2A" in text  # moved up over the two lines drawn before
    assert "ETA 0:02" in text and "1.0 MiB/s" in text
    last_picture = text.rsplit("\x1b[2A", 1)[1]
    assert "succeeded" in last_picture and "100%" in last_picture


def test_the_exit_code_is_0_for_a_succeeded_job_and_1_for_a_failed_one():
    assert progress.outcome(finished(1)) == 0
    assert progress.outcome(finished(2, "no")) == 1


def test_sizes_and_durations_read_as_people_write_them():
    assert progress.human_bytes(512) == "512 B"
    assert progress.human_bytes(3 * 1024 * 1024) == "3.0 MiB"
    assert progress.human_seconds(65) == "1:05"
    assert progress.human_seconds(3725) == "1:02:05"
    assert progress.human_seconds(None) == "?"
    assert progress.bar(1, 4, width=4) == "[#...]  25%"


def test_the_form_follows_the_terminal_unless_json_is_asked_for():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert progress.mode(Tty(), False) == "tty"
    assert progress.mode(io.StringIO(), False) == "plain"
    assert progress.mode(Tty(), True) == "json"
