"""The one place where errors become CloudStack error envelopes and HTTP statuses."""
from __future__ import annotations

import json

from flask import Response

from orchestrator.errors import MotionError, UnsupportedAction


def json_response(body: dict, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json",
                    content_type="application/json; charset=UTF-8")


def error_response(error: MotionError, command: str | None) -> Response:
    """``{"<command>response" | "errorresponse": {"uuidList": [], "errorcode", "cserrorcode", "errortext"}}``.

    432 always uses ``errorresponse``, as CloudStack does; the HTTP status is the error code and
    the X-Description header carries the text.
    """
    known = command and not isinstance(error, UnsupportedAction)
    name = f"{command.lower()}response" if known else "errorresponse"
    body = {name: {"uuidList": [], "errorcode": error.errorcode, "cserrorcode": error.cserrorcode,
                   "errortext": error.text}}
    response = json_response(body, error.errorcode)
    response.headers["X-Description"] = error.text.encode("ascii", "replace").decode("ascii")[:1000]
    return response
