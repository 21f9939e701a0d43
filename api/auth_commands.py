"""``login``, ``logout`` and ``listApis``: sessions for browsers, and what a caller may call.

``login`` and ``logout`` authenticate themselves (``app.dispatch`` lets them through without a
signature; see ``api.session``). ``listApis`` answers, for the caller's role, every registered
command it may call, read from ``registry.COMMANDS`` so that new commands appear by themselves.
"""
from __future__ import annotations

from orchestrator.errors import InvalidParameter

from . import session
from .registry import COMMANDS, Command, Context, command

# Commands that check their own credentials instead of a signature or a session.
SELF_AUTHENTICATED = frozenset({"login", "logout"})
# CloudStack's asynchronous commands among ours (answered with a jobid).
ASYNC_COMMANDS = frozenset({"migrateVolume", "migrateVirtualMachine", "migrateVirtualMachineWithVolume"})


@command("login")
def login(ctx: Context) -> dict:
    """Logs a user into the API and opens a session (JSESSIONID cookie plus sessionkey)."""
    username = ctx.params.required("username")
    password = ctx.params.values.get("password")  # never stripped: spaces may be part of it
    if not password:
        ctx.params.required("password")
    return session.login(ctx.db, username, password, ctx.params.get("domain") or "",
                         ctx.params.get("domainid"))


@command("logout")
def logout(ctx: Context) -> dict:
    """Logs out the user and ends the session."""
    return session.logout(ctx.db, ctx.params.values.get("sessionkey"))


def available(cmd: Command, account_type: int) -> bool:
    return not cmd.admin_only or account_type == 1


def describe(cmd: Command) -> dict:
    doc = (cmd.handler.__doc__ or "").strip().splitlines()
    return {"name": cmd.name, "description": doc[0] if doc else cmd.name,
            "isasync": cmd.name in ASYNC_COMMANDS, "related": "", "since": "", "type": "",
            "params": [], "response": []}


@command("listApis")
def list_apis(ctx: Context) -> dict:
    """Lists the APIs available to the caller's role."""
    names = sorted(n for n, c in COMMANDS.items() if available(c, ctx.caller.account_type))
    wanted = ctx.params.get("name")
    if wanted:
        if wanted not in names:
            raise InvalidParameter(f"Invalid value for parameter name: no API named "
                                   f"{wanted[:64]} is available to you")
        names = [wanted]
    return {"count": len(names), "api": [describe(COMMANDS[n]) for n in names]}
