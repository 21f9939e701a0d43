"""The verdicts of the reconciler against the agents' truth (``orchestrator.truth``), as plain
functions: given what the database records and what the agents answered, is the database right
(``ok``), should it record the agents' truth (``repair``), or is the answer too ambiguous to act
on (``skip``, with the reason)?
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    """``ok`` (agent and database agree), ``repair`` (record ``target``) or ``skip`` (``why``)."""

    action: str
    target: str | None = None
    why: str = ""


OK = Verdict("ok")


def volume_verdict(recorded_pool: str, size: int, truth: dict | None) -> Verdict:
    """Where a Ready volume recorded on pool uuid ``recorded_pool`` belongs, from the agent's
    ``GET {base}/volumes/{id}`` answer (``None``: the agent does not know the volume)."""
    if truth is None:
        return Verdict("skip", why="the agent does not know the volume")
    locations = truth.get("locations") or []
    if any(loc.get("pool") == recorded_pool for loc in locations):
        return OK  # the recorded pool holds a complete copy: the invariant holds
    if not locations:
        return Verdict("skip", why="the agent finds no complete copy on any pool it knows")
    if len(locations) > 1:
        return Verdict("skip", why="the agent finds copies on several pools ("
                       + ", ".join(str(loc.get("pool")) for loc in locations) + "), none on the recorded one")
    [loc] = locations
    if loc.get("size") != size:
        return Verdict("skip", why=f"the only copy, on pool {loc.get('pool')}, has {loc.get('size')} "
                       f"bytes, not {size}")
    if loc.get("online") is False:
        return Verdict("skip", why=f"the only copy is on pool {loc.get('pool')}, which is offline")
    return Verdict("repair", target=loc.get("pool"))


def vm_verdict(recorded_host: str, answers: dict[str, bool | None]) -> Verdict:
    """Where a Running VM recorded on ``recorded_host`` runs, from the agents' answers per host
    name: ``True`` runs it, ``False`` does not, ``None`` did not answer."""
    if answers.get(recorded_host):
        return OK
    if answers.get(recorded_host) is None:
        return Verdict("skip", why=f"the agent of its host {recorded_host} did not answer")
    silent = sorted(h for h, a in answers.items() if a is None)
    if silent:
        return Verdict("skip", why="not on its recorded host; the agents of " + ", ".join(silent)
                       + " did not answer")
    running = sorted(h for h, a in answers.items() if a)
    if not running:
        return Verdict("skip", why="no agent runs it")
    if len(running) > 1:
        return Verdict("skip", why="several hosts run it: " + ", ".join(running))
    return Verdict("repair", target=running[0])
