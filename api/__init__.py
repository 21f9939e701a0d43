"""The CloudStack-compatible HTTP API: ``/client/api?command=...``.

``create_app(settings)`` builds the Flask app; ``gunicorn "api:create_app()"`` serves it. The
API validates, authenticates, records jobs and enqueues them; it never runs a migration.
"""
from .app import create_app

__all__ = ["create_app"]
