# ruff: noqa: F811 -- `sluice` is the fixture test_ui_pages defines, taken by name
"""The native API called by the web UI's pages (issue 11: the builder saves, previews
and simulates through the same endpoints as everyone else), on SQLite and
PostgreSQL: the UI's session cookie counts with the page's CSRF token, never alone."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api_support import Api
from sluice.api.app import create_app
from test_ui_pages import (
    csrf,
    login,
    sluice,  # noqa: F401 (the fixture, shared)
)

FLOW = """\
key: hello
trigger: {event: $signup}
steps:
  # Say hello.
  - id: welcome
    email: {subject: 'Hello', html: '<p>Hi</p>'}
  - id: settle
    wait: 2d
"""
YAML = {"Content-Type": "application/yaml"}


@pytest.fixture
def client(sluice):
    with TestClient(create_app(sluice), follow_redirects=False) as client:
        login(client)
        yield client


def test_the_ui_cookie_with_its_csrf_token_saves_previews_and_simulates(client, sluice):
    token = {"X-CSRF-Token": csrf(client)}
    saved = client.put("/api/flows/hello", content=FLOW, headers={**YAML, **token})
    assert saved.status_code == 201, saved.text
    [change] = client.get("/api/flows/hello/changes", headers=token).json()
    assert change["actor"] == "ui:admin"

    edited = FLOW.replace("wait: 2d", "wait: 1d")
    preview = client.post("/api/flows/hello/preview", content=edited, headers={**YAML, **token})
    assert preview.status_code == 200 and preview.json()["problems"] == []

    script = {"visitor": {"email": "sim@example.com"}, "events": [{"at": "+0s", "type": "$signup"}]}
    simulated = client.post("/api/flows/hello/simulate", json=script, headers=token)
    assert simulated.status_code == 200, simulated.text
    assert simulated.json()["sessions"][0]["status"] == "completed"


def test_the_cookie_alone_is_not_enough(client, sluice):
    answer = client.put("/api/flows/hello", content=FLOW, headers=YAML)
    assert answer.status_code == 401
    assert "X-CSRF-Token" in answer.json()["detail"]
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")  # no browser dialog
    assert client.get("/api/flows").status_code == 401
    assert sluice.list_flows() == []


def test_a_wrong_token_or_another_sites_page_is_refused(client, sluice):
    forged = client.put("/api/flows/hello", content=FLOW, headers={**YAML, "X-CSRF-Token": "x"})
    assert forged.status_code == 403
    assert forged.json()["detail"] == "X-CSRF-Token is not this session's token: reload the page"
    token = {"X-CSRF-Token": csrf(client), "Origin": "https://evil.example"}
    cross = client.put("/api/flows/hello", content=FLOW, headers={**YAML, **token})
    assert cross.status_code == 403 and "another site" in cross.json()["detail"]
    assert sluice.list_flows() == []


def test_a_token_of_an_ended_session_is_refused(client, sluice):
    token = {"X-CSRF-Token": csrf(client)}
    cookie = client.cookies["sluice_ui"]
    client.post("/logout", data={"csrf": token["X-CSRF-Token"]})
    client.cookies.set("sluice_ui", cookie)  # a copy taken before logging out
    answer = client.get("/api/flows", headers=token)
    assert answer.status_code == 401 and "log in again" in answer.json()["detail"]


def test_a_key_still_works_and_is_recorded_as_the_api(client, sluice):
    api = Api(sluice, client)
    client.cookies.clear()
    assert api.put("/flows/hello", content=FLOW, headers=YAML).status_code == 201
    [change] = api.get("/flows/hello/changes").json()
    assert change["actor"] == "api"
