"""Flask app factory and the single dispatch route for CloudStack commands.

A request goes through, in order: size limits and character checks (``limits``), the command
lookup (unknown: 432), the caller (signature or session: 401; ``login``/``logout`` check their
own credentials), the role (a root-admin command for anyone else: 432, as CloudStack answers for
a command not available to the caller), then the handler inside an audit scope (``audit``).
Every refusal is a CloudStack error envelope; nothing the caller sends can produce a 5xx other
than CloudStack's own account/capacity codes (531-537).
"""
from __future__ import annotations

import logging
from typing import Callable

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from orchestrator import config
from orchestrator.accounts import credentials_by_api_key
from orchestrator.db import Database, first_line, unavailable
from orchestrator.errors import DatabaseUnavailable, InvalidParameter, MotionError, UnsupportedAction

from . import audit, command_modules  # noqa: F401  (command_modules registers the commands)
from .auth import CREDENTIALS_TTL, CredentialsCache, authenticate_signed, by_session
from .auth_commands import SELF_AUTHENTICATED
from .errors import error_response, http_error_response, json_response
from .limits import MAX_BODY_BYTES, MAX_PARAMETERS, check_parameters, read_parameters
from .params import Params
from .fast import Lane
from .registry import COMMANDS, Context, read_fast, reader
from .session import COOKIE, apply_cookie, resume

log = logging.getLogger(__name__)
PING_IDLE_SECONDS = 1.0


def create_app(settings: config.Settings | None = None, db: Database | None = None,
               enqueue: Callable[[int], None] | None = None) -> Flask:
    settings = settings or config.from_env()
    # Its own database: ping pooled connections only after a second idle (see db.make_engine).
    db = db or Database(settings.database_url, application_name="motion-api",
                        **({} if settings.database_url.startswith("sqlite")
                           else {"ping_idle_seconds": PING_IDLE_SECONDS}))
    if enqueue is None:
        from workers.app import celery_enqueuer

        enqueue = celery_enqueuer(settings)
    audit.install(db)
    credentials = CredentialsCache(0 if db.url.startswith("sqlite") else CREDENTIALS_TTL)
    app = Flask("motion-api")
    app.config["MOTION_DB"] = db
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["MAX_FORM_MEMORY_SIZE"] = MAX_BODY_BYTES
    app.config["MAX_FORM_PARTS"] = MAX_PARAMETERS + 1

    def answer(pairs, values, cookie=None) -> tuple[Response, str | None]:
        return respond(db, enqueue, settings, credentials, pairs, values, cookie)

    @app.route("/client/api", methods=["GET", "POST"])
    def client_api():
        try:
            pairs = read_parameters(request)
        except MotionError as exc:
            return error_response(exc, None)
        values = {k.lower(): v for k, v in pairs}
        g.motion_values = values  # read once; api.observability logs from these
        response, g.motion_job = answer(pairs, values, request.cookies.get(COOKIE))
        apply_cookie(response)
        return response

    # Signed GETs skip Flask (see api.fast): polls answered with the job, and every other
    # command but those that manage sessions, through the same ``respond``.
    app.wsgi_app = Lane(app.wsgi_app, answer, lambda statement, params: read_fast(db, statement, params),
                        lambda api_key: load_credentials(db, api_key), credentials)

    # Pages and endpoints beside /client/api: the web console and the operational endpoints.
    from . import observability, web

    web.register(app, db, settings)
    observability.register(app, db, settings)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return http_error_response(exc)

    return app


def respond(db: Database, enqueue, settings, credentials: CredentialsCache | None, pairs, values,
            cookie: str | None = None) -> tuple[Response, str | None]:
    """The answer to a request with parameters ``pairs`` (``values``: by lower-cased name), and the
    id of the job it created or named, if any: the command's envelope, or the error envelope."""
    name = values.get("command")
    try:
        check_parameters(pairs)
        body = dispatch(db, enqueue, settings, name, pairs, values, cookie, credentials)
    except MotionError as exc:
        return error_response(exc, name if name in COMMANDS else None), None
    except Exception as failure:
        known = name if name in COMMANDS else None
        if unavailable(failure):  # an outage, not a bug: one line in the log, a text that says so
            log.warning("command %s: the database is unavailable: %s", known or "(unknown)", first_line(failure))
            exc = DatabaseUnavailable("The database is unavailable at the moment; try again shortly")
        else:  # a bug of ours, never the caller's: say so without a traceback
            log.exception("internal error in command %s", known or "(unknown)")
            exc = MotionError("Internal error executing command, please contact your system administrator")
        return error_response(exc, known), None
    answer = next(iter(body.values()), None)
    return json_response(body), answer.get("jobid") if isinstance(answer, dict) else None


def dispatch(db: Database, enqueue, settings, name: str | None, pairs, values, cookie: str | None = None,
             credentials: CredentialsCache | None = None) -> dict:
    """Run command ``name`` for the caller of this request; the body of its ``<name>response``.

    A signed caller is checked before the command's unit of work begins, with one single-statement
    read (none while its API key is cached in ``credentials``), so that read-only commands can
    answer without opening a transaction at all.
    """
    if not name:
        raise InvalidParameter("no command specified")
    cmd = COMMANDS.get(name)
    if cmd is None:
        raise UnsupportedAction(f"Unknown API command: {name[:64]}")
    self_authenticated = name in SELF_AUTHENTICATED
    caller = None
    if not self_authenticated and by_session(values, cookie):
        # Resuming may move the session's idle deadline: a write, so in its own unit of work.
        caller = resume(db, cookie, values.get("sessionkey"))
    reads = reader(db)
    if caller is None and not self_authenticated:
        caller = authenticate_signed(lambda api_key: load_credentials(db, api_key), pairs, values, credentials)
    with audit.tracking(db, name, values) as tracker:
        with db.uow() as uow:
            if cmd.admin_only and (caller is None or not caller.is_root_admin):
                log.info("refused: %s is for root admins; caller account type %s", name,
                         caller.account_type if caller else None)
                raise UnsupportedAction(f"The given command:{name} does not exist or it is not "
                                        f"available for user")
            tracker.caller = caller
            ctx = Context(uow.session, caller, Params(name, values), db, enqueue, settings, reads, uow)
            return {f"{name.lower()}response": cmd.handler(ctx)}


def load_credentials(db: Database, api_key: str):
    """An API key's credentials, in one single-statement read."""
    with reader(db).connect() as conn:
        return credentials_by_api_key(conn, api_key)
