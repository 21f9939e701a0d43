"""The web console served at ``/``: the seed's UI flow for root admins (issue 11; docs/console.md).

``/`` answers the console's page (200, no login needed: the page itself shows the login form);
``/console/<file>`` serves its stylesheet and JavaScript from ``api/static``. Everything else
happens in the browser, which calls the same ``/client/api`` commands as any client, by POST,
with the session key from ``login`` (kept in ``sessionStorage``) and the ``JSESSIONID`` cookie.
No build step, no external network: the files here are the whole console.

Its pages are strict about where code may come from (``Content-Security-Policy``: this origin
only, no inline script), so API data the pages show can never run as code.
"""
from __future__ import annotations

from pathlib import Path

from flask import Response, send_from_directory
from jinja2 import Environment, FileSystemLoader, select_autoescape

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}


def _secure(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers[name] = value
    return response


def register(app, db, settings) -> None:
    # A loader of our own (not Flask's): a ``templates`` folder in the server's working
    # directory must never shadow the console's page.
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]))
    page = env.get_template("console.html").render()

    @app.get("/")
    def index():
        response = Response(page, mimetype="text/html")
        response.headers["Cache-Control"] = "no-cache"
        return _secure(response)

    @app.get("/console/<path:filename>")
    def console_static(filename: str):
        # send_from_directory refuses paths outside STATIC (404) and answers conditional GETs;
        # max_age=0 makes browsers revalidate, so a new release is picked up at once.
        response = send_from_directory(STATIC, filename, max_age=0)
        return _secure(response)
