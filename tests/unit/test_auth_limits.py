"""Oversized and malformed requests are refused before anything else happens.

The app here has a database that cannot be opened: a request that got as far as a query would
answer 530, so every 413/414/431 below proves the refusal came first.
"""
import pytest

from api import create_app, limits
from orchestrator.config import Settings
from orchestrator.db import Database

NOWHERE = "sqlite:////nonexistent-dir/motion.db"


@pytest.fixture
def client():
    app = create_app(Settings(database_url=NOWHERE), Database(NOWHERE), lambda _job: None)
    return app.test_client()


def envelope(response, code, name="listzonesresponse"):
    assert response.status_code == code
    body = response.get_json()[name]
    assert body["errorcode"] == code and body["errortext"]
    return body["errortext"]


def test_a_query_string_over_the_limit_gets_414(client):
    response = client.get("/client/api?command=listZones&x=" + "a" * limits.MAX_QUERY_BYTES)
    envelope(response, 414, "errorresponse")


def test_a_body_over_the_limit_gets_413(client):
    response = client.post("/client/api", data=b"command=listZones&x=" + b"a" * limits.MAX_BODY_BYTES,
                           content_type="application/x-www-form-urlencoded")
    envelope(response, 413, "errorresponse")


def test_too_many_parameters_get_413(client):
    query = "&".join(f"p{i}=1" for i in range(limits.MAX_PARAMETERS + 1))
    envelope(client.get(f"/client/api?command=listZones&{query}"), 413, "errorresponse")


@pytest.mark.parametrize("query,needle", [
    ("keyword=" + "a" * (limits.MAX_VALUE_CHARS + 1), "parameter keyword"),
    ("keyword=a%00b", "parameter keyword: control characters"),
    ("keyword=a%1bb", "parameter keyword: control characters"),
    ("a%0ab=1", "Invalid parameter name"),
    ("n" * (limits.MAX_NAME_CHARS + 1) + "=1", "Invalid parameter name"),
])
def test_absurd_names_and_values_get_431_naming_the_parameter(client, query, needle):
    assert needle in envelope(client.get(f"/client/api?command=listZones&{query}"), 431)


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("query,needle", [
    ("keyword=%ff%fe", "parameter keyword: it is not valid UTF-8"),
    ("p%ffq=1", "Invalid parameter name 'p?q': it is not valid UTF-8"),
])
def test_bytes_that_are_not_utf8_get_431_naming_the_parameter(client, method, query, needle):
    if method == "get":
        response = client.get(f"/client/api?command=listZones&{query}")
    else:  # raw bytes in a form body, percent-encoded or not
        body = f"command=listZones&{query}".encode().replace(b"%ff", b"\xff")
        response = client.post("/client/api", data=body, content_type="application/x-www-form-urlencoded")
    assert needle in envelope(response, 431, "errorresponse")


def test_tabs_and_newlines_in_values_pass_the_early_checks():
    limits.check_parameters([("description", "line one\n\tline two\r\n")])


def test_an_unknown_command_and_a_missing_one_are_refused_before_the_database(client):
    assert "Unknown API command" in envelope(client.get("/client/api?command=dropAllTables"), 432,
                                             "errorresponse")
    envelope(client.get("/client/api"), 431, "errorresponse")


def test_other_methods_and_paths_answer_in_the_envelope_too(client):
    envelope(client.put("/client/api"), 405, "errorresponse")
    envelope(client.get("/client/other"), 404, "errorresponse")
