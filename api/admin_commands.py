"""Root-admin commands over the audit trail and the global configuration: listEvents,
listConfigurations, updateConfiguration."""
from __future__ import annotations

from sqlalchemy import select

from orchestrator import models as m, responses
from orchestrator.errors import InvalidParameter

from .registry import Context, command, like, listing
from .signing import parse_expires

# What updateConfiguration accepts: name -> (parse, check, rule in words).
SETTABLE = {
    "wait": (int, lambda v: 1 <= v <= 7 * 24 * 3600, "an integer number of seconds from 1 to 604800"),
    "storage.overprovisioning.factor": (float, lambda v: 0.1 <= v <= 100, "a number from 0.1 to 100"),
    "pool.storage.allocated.capacity.disablethreshold": (float, lambda v: 0 < v <= 1,
                                                         "a number above 0 and at most 1"),
    "pool.storage.migration.limit": (int, lambda v: 1 <= v <= 1000, "an integer from 1 to 1000"),
    "agent.unreachable.giveup": (int, lambda v: 0 <= v <= 7 * 24 * 3600,
                                 "an integer number of seconds from 0 to 604800"),
    "reconcile.truth.interval": (int, lambda v: 0 <= v <= 7 * 24 * 3600,
                                 "an integer number of seconds from 0 (off) to 604800"),
    "reconcile.truth.batch": (int, lambda v: 1 <= v <= 100_000, "an integer from 1 to 100000"),
    "job.expire.minutes": (int, lambda v: v == 0 or 5 <= v <= 5_256_000,
                           "0 (keep finished jobs) or an integer number of minutes from 5 to 5256000"),
    "event.purge.delay": (int, lambda v: 0 <= v <= 36500, "an integer number of days from 0 (keep events) to 36500"),
}


def _date(ctx: Context, name: str):
    value = ctx.params.get(name)
    if not value:
        return None
    parsed = parse_expires(value)
    if parsed is None and len(value) == 10:
        parsed = parse_expires(value + "T00:00:00+0000")
    if parsed is None:
        raise InvalidParameter(f"Invalid value {value!r} for parameter {name}: use yyyy-MM-dd or "
                               f"yyyy-MM-dd'T'HH:mm:ssZ")
    return parsed.replace(tzinfo=None)


@command("listEvents", admin_only=True)
def list_events(ctx: Context) -> dict:
    q = select(m.Event).order_by(m.Event.id.desc())
    if ctx.params.get("type"):
        q = q.where(m.Event.type == ctx.params.get("type"))
    if ctx.params.get("level"):
        level = ctx.params.get("level").upper()
        if level not in ("INFO", "WARN", "ERROR"):
            raise InvalidParameter(f"Invalid value {ctx.params.get('level')!r} for parameter level: "
                                   f"use INFO, WARN or ERROR")
        q = q.where(m.Event.level == level)
    start, end = _date(ctx, "startdate"), _date(ctx, "enddate")
    if start:
        q = q.where(m.Event.created >= start)
    if end:
        q = q.where(m.Event.created <= end)
    if ctx.params.get("keyword"):
        q = q.where(m.Event.description.like(like(ctx.params.get("keyword")), escape="\\"))
    users: dict[int, m.User] = {}

    def render(e: m.Event) -> dict:
        user = users.setdefault(e.user_id, ctx.session.get(m.User, e.user_id))
        return responses.event(e, user.account, user)
    return listing(ctx, q, "event", render)


@command("listConfigurations", admin_only=True)
def list_configurations(ctx: Context) -> dict:
    q = select(m.Configuration).order_by(m.Configuration.name)
    if ctx.params.get("name"):
        q = q.where(m.Configuration.name == ctx.params.get("name"))
    if ctx.params.get("category"):
        q = q.where(m.Configuration.category == ctx.params.get("category"))
    if ctx.params.get("keyword"):
        q = q.where(m.Configuration.name.like(like(ctx.params.get("keyword")), escape="\\"))
    return listing(ctx, q, "configuration", responses.configuration)


@command("updateConfiguration", admin_only=True)
def update_configuration(ctx: Context) -> dict:
    name = ctx.params.required("name")
    value = ctx.params.get("value")
    if name not in SETTABLE:
        raise InvalidParameter(f"Invalid parameter name value={name}: not a configuration this "
                               f"service uses ({', '.join(sorted(SETTABLE))})")
    if value is None or value == "":
        raise InvalidParameter(f"Unable to execute API command {ctx.params.api_name} due to missing "
                               f"parameter value")
    parse, check, rule = SETTABLE[name]
    try:
        parsed = parse(value)
        ok = check(parsed)
    except ValueError:
        ok = False
    if not ok:
        raise InvalidParameter(f"Invalid value {value!r} for configuration {name}: it must be {rule}")
    row = ctx.session.get(m.Configuration, name)
    row.value = str(parsed)
    ctx.session.commit()
    return {"configuration": responses.configuration(row)}
