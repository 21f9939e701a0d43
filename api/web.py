"""The web console served at ``/`` (the seed's UI flow); see issue 11. Until it lands, ``/``
answers where the API is."""
from __future__ import annotations

from .errors import json_response


def register(app, db, settings) -> None:
    @app.get("/")
    def index():
        return json_response({"service": "motion", "api": "/client/api"})
