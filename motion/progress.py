"""How ``motion jobs watch`` and ``motion migrate ... --wait`` show a job while it runs.

Three forms, chosen by ``mode(out, as_json)``:

- ``tty`` (standard output is a terminal): a header line (job, phase, queue position, why it
  waits) and one bar per volume with bytes, rate and ETA, redrawn in place;
- ``plain`` (not a terminal): one line per change, ``key=value`` words (``-`` for nothing, JSON
  quotes around text with spaces), for instance ``job=UUID status=pending phase=dispatched queue=-
  done=1048576 total=4194304 percent=25 rate=524288 eta=6.0 status_text=-`` and, for a VM's
  volumes, ``job=UUID volume=NAME done=... total=... state=...``; at the end
  ``job=UUID result=succeeded`` or ``job=UUID result=failed code=530 error="..."``;
- ``json`` (``--json``): one JSON object per change - the ``queryAsyncJobResult`` answer as the
  API gave it - the last one being the finished job (``jobstatus`` 1 or 2).
"""
from __future__ import annotations

import json
import shutil
from typing import TextIO

STATUS = {0: "pending", 1: "succeeded", 2: "failed"}


def mode(out: TextIO, as_json: bool) -> str:
    if as_json:
        return "json"
    try:
        return "tty" if out.isatty() else "plain"
    except (AttributeError, ValueError):
        return "plain"


def human_bytes(n: float | int | None) -> str:
    n = float(n or 0)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def human_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(float(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def bar(done: int, total: int, width: int = 24) -> str:
    fraction = min(1.0, done / total) if total else 0.0
    filled = int(round(fraction * width))
    return "[" + "#" * filled + "." * (width - filled) + f"] {int(fraction * 100):3d}%"


def word(value) -> str:
    """A value as one parseable word: ``-`` for nothing, JSON quotes around text with spaces."""
    if value is None or value == "":
        return "-"
    text = str(value)
    return json.dumps(text) if any(c in text for c in " \"'=\t\n") else text


def percent(done: int, total: int) -> int:
    return int(100 * done / total) if total else 0


class JobView:
    """Shows successive answers of ``queryAsyncJobResult`` for one job in one of the three forms.

    ``label`` names what moves (shown in the tty header); ``names`` maps volume ids to names.
    """

    def __init__(self, out: TextIO, form: str, label: str = "", names: dict[str, str] | None = None):
        self.out, self.form, self.label = out, form, label
        self.names = names if names is not None else {}
        self._last = None
        self._job: dict = {}
        self._drawn = 0

    def _final(self, job: dict) -> dict:
        """A finished job answers without progress: keep the last one seen (complete on success)."""
        final = {**self._job, **job}
        if job.get("jobstatus") == 1:
            final["bytesdone"] = final.get("bytestotal", 0)
            final["volumes"] = [{**v, "bytesDone": v.get("bytesTotal", 0)} for v in final.get("volumes") or []]
        return final

    def _key(self, job: dict):
        volumes = tuple((v.get("id"), v.get("bytesDone"), v.get("state")) for v in job.get("volumes") or [])
        return (job.get("jobstatus"), job.get("phase"), job.get("queueposition"), job.get("bytesdone"),
                job.get("statustext"), job.get("cancelrequested"), volumes)

    def show(self, job: dict) -> bool:
        """Show the job if anything changed since last time; True when something was written."""
        key = self._key(job)
        if key == self._last and self.form != "tty":
            return False
        self._last = key
        self._job = job
        if self.form == "json":
            self.out.write(json.dumps(job) + "\n")
        elif self.form == "plain":
            self.out.write("".join(line + "\n" for line in self.plain(job)))
        else:
            self._draw(self.bars(job))
        self.out.flush()
        return True

    def done(self, job: dict) -> None:
        """Show the finished job."""
        if self.form == "json":
            self.out.write(json.dumps(job) + "\n")
        else:
            if self.form == "tty":  # the last picture, with the outcome
                self._draw(self.bars(self._final(job)))
            result = job.get("jobresult") or {}
            words = [f"job={job.get('jobid')}", f"result={STATUS.get(job.get('jobstatus'), job.get('jobstatus'))}"]
            if job.get("jobstatus") == 2:
                words += [f"code={result.get('errorcode', job.get('jobresultcode'))}",
                          f"error={word(result.get('errortext'))}"]
            self.out.write(" ".join(words) + "\n")
        self.out.flush()

    # -- the forms ---------------------------------------------------------------------------
    def plain(self, job: dict) -> list[str]:
        jid = job.get("jobid")
        done, total = int(job.get("bytesdone") or 0), int(job.get("bytestotal") or 0)
        lines = [" ".join([f"job={jid}", f"status={STATUS.get(job.get('jobstatus'), '?')}",
                           f"phase={word(job.get('phase'))}", f"queue={word(job.get('queueposition'))}",
                           f"done={done}", f"total={total}", f"percent={percent(done, total)}",
                           f"rate={word(job.get('rate'))}", f"eta={word(job.get('eta'))}",
                           f"status_text={word(job.get('statustext'))}"])]
        for v in job.get("volumes") or []:
            lines.append(" ".join([f"job={jid}", f"volume={word(self.names.get(v.get('id'), v.get('id')))}",
                                   f"done={int(v.get('bytesDone') or 0)}",
                                   f"total={int(v.get('bytesTotal') or 0)}",
                                   f"state={word(v.get('state'))}"]))
        return lines

    def bars(self, job: dict) -> list[str]:
        status = STATUS.get(job.get("jobstatus"), "?")
        phase = job.get("phase") if status == "pending" else status
        head = f"job {job.get('jobid')}  {self.label + '  ' if self.label else ''}{phase}"
        if job.get("queueposition"):
            head += f" (queue position {job['queueposition']})"
        if job.get("statustext"):
            head += f": {job['statustext']}"
        if job.get("cancelrequested"):
            head += " [cancel requested]"
        width = max(10, min(30, shutil.get_terminal_size((100, 20)).columns - 70))
        rows = [(self.names.get(v.get("id"), v.get("id", "")[:8]), int(v.get("bytesDone") or 0),
                 int(v.get("bytesTotal") or 0), v.get("state") or "") for v in job.get("volumes") or []]
        done, total = int(job.get("bytesdone") or 0), int(job.get("bytestotal") or 0)
        if status == "succeeded" and not rows:
            done = total
        lines = [head]
        for name, vdone, vtotal, state in rows:
            if not vtotal:
                lines.append(f"  {name:<20.20} ({state or 'nothing to copy'})")
                continue
            lines.append(f"  {name:<20.20} {bar(vdone, vtotal, width)}  {human_bytes(vdone)}/{human_bytes(vtotal)}"
                         f"  {state}")
        rate, eta = job.get("rate"), job.get("eta")
        tail = f"  {human_bytes(rate)}/s  ETA {human_seconds(eta)}" if status == "pending" and rate else ""
        lines.append(f"  {'total' if rows else 'copied':<20} {bar(done, total, width)}  "
                     f"{human_bytes(done)}/{human_bytes(total)}{tail}")
        return lines

    def _draw(self, lines: list[str]) -> None:
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}A\r")
        self.out.write("".join(f"\x1b[2K{line}\n" for line in lines))
        if len(lines) < self._drawn:  # clear what is left of a taller drawing
            self.out.write("\x1b[2K\n" * (self._drawn - len(lines)) + f"\x1b[{self._drawn - len(lines)}A")
        self._drawn = len(lines)


def outcome(job: dict) -> int:
    """The exit code for a finished job: 0 succeeded, 1 failed."""
    return 0 if job.get("jobstatus") == 1 else 1
