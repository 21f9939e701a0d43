"""The console's files over HTTP, without a browser: ``/`` answers without a login, every
referenced file is served, only files of ``api/static`` are, and the pages forbid code from
anywhere but this server (no CDN, no inline script)."""
import re

import pytest

from api import create_app
from api.web import STATIC
from orchestrator.config import Settings
from orchestrator.db import Database


@pytest.fixture
def client(sqlite_url):
    db = Database(sqlite_url)
    app = create_app(Settings(database_url=sqlite_url), db, lambda _job_id: None)
    yield app.test_client()
    db.dispose()


def test_the_root_path_answers_the_console_page_without_a_login(client):
    response = client.get("/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert 'id="login-form"' in page and "/console/js/app.js" in page
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy and "unsafe-inline" not in policy
    assert response.headers["X-Frame-Options"] == "DENY"


def test_every_file_the_page_and_its_modules_reference_is_served_from_this_server(client):
    page = client.get("/").get_data(as_text=True)
    wanted = set(re.findall(r'(?:src|href)="(/console/[^"]+)"', page))
    for module in STATIC.joinpath("js").glob("*.js"):
        wanted |= {f"/console/js/{name}" for name in re.findall(r'from "\./([\w.]+\.js)"', module.read_text())}
    assert "/console/console.css" in wanted and "/console/js/api.js" in wanted
    for path in sorted(wanted):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.mimetype in ("text/css", "text/javascript", "application/javascript"), path
    texts = [p.read_text() for p in STATIC.rglob("*") if p.is_file()] + [page]
    assert not any(re.search(r"(?:src|href)=\"(?:https?:)?//", text) for text in texts)  # nothing external
    assert not any(re.search(r"""fetch\(\s*["'`]https?:""", text) for text in texts)
    assert "<script>" not in page  # no inline script: the policy would block it anyway


def test_nothing_outside_the_static_folder_is_served(client):
    for path in ("/console/../web.py", "/console/%2e%2e/web.py", "/console/..%2fweb.py", "/console/nothing.js"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "errorresponse" in response.get_json()  # the API's envelope, like any wrong path
