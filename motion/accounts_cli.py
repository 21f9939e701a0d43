"""``motion keys`` and ``motion users``: accounts, users and API keys from the shell.

They work on the configured database or, with ``--data-dir DIR``, on the embedded system of
``motion up --data-dir DIR`` — also while it runs (SQLite in WAL mode, short transactions). Each
run is one unit of work: its output is printed only once committed. Every change is recorded as
an event attributed to the user concerned (the shell has no API caller). Secret keys are printed
by ``keys create`` only; passwords are read from standard input or a prompt, never from the
command line. A refusal prints the reason and exits 2.
"""
from __future__ import annotations

import getpass
import json
import logging
import sys
from pathlib import Path
from typing import Callable

from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from orchestrator import accounts
from orchestrator.config import Settings
from orchestrator.db import Database
from orchestrator.errors import InvalidParameter
from orchestrator.models import User


def _database(args, settings: Settings) -> Database:
    """``--data-dir``'s SQLite file is migrated as ``motion up`` does; a configured database is
    left as it is (``motion db upgrade`` is for its operator)."""
    if getattr(args, "data_dir", None):
        import migrations

        Path(args.data_dir).mkdir(parents=True, exist_ok=True)
        migrations.upgrade(settings.database_url)
    return Database(settings.database_url, application_name="motion-cli")


def _run(args, settings: Settings, action: Callable[[Session], str]) -> int:
    logging.getLogger().setLevel(logging.WARNING)
    db = _database(args, settings)
    try:
        with db.uow() as uow:
            out = action(uow.session)
            uow.commit()
    except InvalidParameter as exc:
        print(f"motion {args.command}: {exc.text}", file=sys.stderr)
        return 2
    except (OperationalError, ProgrammingError) as exc:
        print(f"motion {args.command}: the database is unreachable or has no schema "
              f"({type(getattr(exc, 'orig', None) or exc).__name__}); is it up, and did "
              f"'motion db upgrade' run?", file=sys.stderr)
        return 2
    finally:
        db.dispose()
    print(out)
    return 0


def keys(args, settings: Settings) -> int:
    """``create`` prints a new key pair (the only time the secret is shown); ``list`` shows api
    keys, users, accounts, roles and states, never a secret; ``disable``/``enable`` switch the
    user of an api key, or a whole ``--account``, off or on again."""

    def create(session: Session) -> str:
        key = accounts.create_key(session, args.role, args.account, args.username)
        accounts.record(session, session.get(User, key["user_id"]), "REGISTER.USER.KEY",
                        f"api key created from the command line for user {key['username']} "
                        f"({key['role']})")
        if args.json:
            return json.dumps({"apikey": key["apikey"], "secretkey": key["secretkey"]})
        return (f"account: {key['account']} ({key['role']})\nuser: {key['username']}\n"
                f"apikey: {key['apikey']}\nsecretkey: {key['secretkey']}")

    def listing(session: Session) -> str:
        rows = accounts.list_keys(session)
        if args.json:
            return json.dumps(rows)
        lines = [f"{'APIKEY':<88} {'USER':<24} {'ACCOUNT':<20} {'ROLE':<12} STATE"]
        lines += [f"{r['apikey'] or '-':<88} {r['username']:<24} {r['account']:<20} {r['role']:<12} "
                  f"{r['state']}" for r in rows]
        return "\n".join(lines)

    def switch(session: Session) -> str:
        if bool(args.apikey) == bool(args.account):
            raise InvalidParameter(f"keys {args.action} needs an APIKEY or --account NAME (one of them)")
        state = "disabled" if args.action == "disable" else "enabled"
        users = accounts.set_state(session, state, api_key=args.apikey, account_name=args.account)
        what = f"account {args.account}" if args.account else "its api key"
        for user in users:
            accounts.record(session, user, f"USER.{args.action.upper()}",
                            f"user {user.username} {state} from the command line (by {what})")
        return f"{len(users)} user(s) {state}: {', '.join(u.username for u in users) or '-'}"

    return _run(args, settings, {"create": create, "list": listing}.get(args.action, switch))


def users(args, settings: Settings) -> int:
    """``create USERNAME``: a user who can ``login``, optionally with a key pair (``--with-keys``)."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("motion users: the passwords differ", file=sys.stderr)
            return 2
    else:
        print("motion users: give the password on standard input with --password-stdin", file=sys.stderr)
        return 2

    def create(session: Session) -> str:
        made = accounts.create_user(session, args.username, password, args.role, args.account,
                                    with_keys=args.with_keys)
        accounts.record(session, session.get(User, made["user_id"]), "USER.CREATE",
                        f"user {made['username']} ({made['role']}) created from the command line")
        made.pop("user_id")
        return json.dumps(made) if args.json else "\n".join(f"{k}: {v}" for k, v in made.items())

    return _run(args, settings, create)
