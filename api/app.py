"""Flask app factory and the single dispatch route for CloudStack commands."""
from __future__ import annotations

import logging
from typing import Callable

from flask import Flask, request

from orchestrator import config
from orchestrator.db import Database
from orchestrator.errors import InvalidParameter, MotionError, UnsupportedAction

from . import command_modules  # noqa: F401  (registers the commands)
from .auth import authenticate
from .errors import error_response, json_response
from .params import Params
from .registry import COMMANDS, Context

log = logging.getLogger(__name__)


def create_app(settings: config.Settings | None = None, db: Database | None = None,
               enqueue: Callable[[int], None] | None = None) -> Flask:
    settings = settings or config.from_env()
    db = db or Database(settings.database_url)
    if enqueue is None:
        from workers.app import celery_enqueuer

        enqueue = celery_enqueuer(settings)
    app = Flask("motion-api")
    app.config["MOTION_DB"] = db

    @app.route("/client/api", methods=["GET", "POST"])
    def client_api():
        pairs = list(request.args.items(multi=True)) + list(request.form.items(multi=True))
        values = {k.lower(): v for k, v in pairs}
        name = values.get("command")
        try:
            return json_response(dispatch(db, enqueue, settings, name, pairs, values))
        except MotionError as exc:
            return error_response(exc, name if name in COMMANDS else None)
        except Exception:  # a bug of ours, never the caller's: say so without a traceback
            log.exception("internal error in command %s", name)
            exc = MotionError("Internal error executing command, please contact your system administrator")
            return error_response(exc, name if name in COMMANDS else None)

    @app.get("/")
    def index():
        return json_response({"service": "motion", "api": "/client/api"})

    return app


def dispatch(db: Database, enqueue, settings, name: str | None, pairs, values) -> dict:
    if not name:
        raise InvalidParameter("no command specified")
    cmd = COMMANDS.get(name)
    if cmd is None:
        raise UnsupportedAction(f"Unknown API command: {name}")
    with db.uow() as uow:
        caller = authenticate(uow.session, pairs, values)
        if cmd.admin_only and not caller.is_root_admin:
            raise UnsupportedAction(f"The given command:{name} does not exist or it is not available "
                                    f"for user")
        ctx = Context(uow.session, caller, Params(name, values), db, enqueue, settings)
        return {f"{name.lower()}response": cmd.handler(ctx)}
