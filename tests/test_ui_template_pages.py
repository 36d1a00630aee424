"""The template pages in-process, on SQLite and PostgreSQL: the editor's check as you
type, saving (refused with its problems), and deleting (refused while a flow uses the
template). The same in a real browser is in test_ui_templates.py."""

from __future__ import annotations

import re
from html import unescape

import pytest
from fastapi.testclient import TestClient

from sluice.api.app import create_app
from sluice.definitions.parse import load_documents
from sluice.service import Sluice
from sluice.settings import Settings

PASSWORD = "correct horse battery"
DOCUMENTS = """
kind: template
key: nudge
subject: 'Hi {{ visitor.first_name }}'
html: '<p>Hello {{ visitor.first_name }}</p>'
---
key: onboarding
trigger: {event: $signup}
steps:
  - id: nudge_email
    email: {template: nudge}
"""


@pytest.fixture
def sluice(database_url, clock):
    settings = Settings(
        database_url=database_url, signing_key="test-signing-key", admin_password=PASSWORD
    )
    app = Sluice(settings, clock)
    app.apply([("seed", d) for d in load_documents(DOCUMENTS, "seed")], actor="ops")
    yield app
    app.close()


@pytest.fixture
def browser(sluice) -> TestClient:
    with TestClient(create_app(sluice), follow_redirects=False) as client:
        page = client.get("/login")
        token = re.search(r'name="login_token" value="([^"]+)"', page.text).group(1)
        client.post(
            "/login",
            data={"username": "admin", "password": PASSWORD, "login_token": token, "next": "/"},
        )
        yield client


def csrf(client: TestClient, path: str = "/templates") -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get(path).text).group(1)


def test_the_check_renders_for_a_visitor_and_locates_liquid_errors(browser):
    token = csrf(browser)
    body = {"subject": "Hi {{ visitor.first_name }}", "html": "<p>{{ visitor.first_name }}</p>"}
    assert browser.post("/ui/templates/check", json=body).status_code == 403  # no token

    answer = browser.post(
        "/ui/templates/check",
        json=body | {"visitor_email": "eve@example.com", "fields": {"first_name": "<Eve>"}},
        headers={"X-CSRF-Token": token},
    ).json()
    assert answer["problems"] == []
    assert answer["email"]["subject"] == "Hi <Eve>"
    assert "<body><p>&lt;Eve&gt;</p></body>" in answer["email"]["html"]  # as inlined for sending
    assert answer["email"]["text"] == "<Eve>"
    assert "made-up" in answer["who"]

    broken = body | {"html": "<p>a</p>\n<p>{{ visitor.first_name </p>"}
    answer = browser.post(
        "/ui/templates/check", json=broken, headers={"X-CSRF-Token": token}
    ).json()
    [problem] = answer["problems"]
    assert (problem["loc"], problem["line"]) == ("html", 2)
    assert answer["email"] is None


def test_saving_a_broken_template_shows_its_problems_and_keeps_the_version(browser, sluice):
    answer = browser.post(
        "/templates/nudge",
        data={"csrf": csrf(browser), "subject": "Hi {% if %}", "html": "<p>x</p>", "text": ""},
    )
    assert answer.status_code == 422
    assert "Liquid syntax error" in unescape(answer.text)
    assert sluice.template("nudge")["version"] == 1

    answer = browser.post(
        "/templates/nudge",
        data={"csrf": csrf(browser), "subject": "New", "html": "<p>x</p>", "text": ""},
    )
    assert answer.status_code == 303
    assert sluice.template("nudge")["definition"] == {
        "kind": "template",
        "key": "nudge",
        "subject": "New",
        "html": "<p>x</p>",
    }
    versions = browser.get("/templates/nudge?tab=versions&a=1&b=2")
    assert versions.status_code == 200
    assert "+subject: New" in unescape(versions.text).replace('</td><td class="code">', "")


def test_saving_the_subject_alone_keeps_the_rest_of_the_text_as_written(browser, sluice):
    """The form sends the HTML's line breaks as CR LF: read as LF, the HTML is
    unchanged, and the version's text changes on the subject's line alone."""
    written = (
        "# Sent three days in.\n"
        "kind: template\n"
        "key: nudge\n"
        "subject: 'Hi {{ visitor.first_name }}'\n"
        "html: |\n"
        "  <p>Hello {{ visitor.first_name }}</p>\n"
        "  <p>Still there?</p>\n"
    )
    sluice.apply_text(written, "nudge.yaml", actor="ops")
    html = "<p>Hello {{ visitor.first_name }}</p>\r\n<p>Still there?</p>\r\n"
    answer = browser.post(
        "/templates/nudge",
        data={"csrf": csrf(browser), "subject": "Still there?", "html": html, "text": ""},
    )
    assert answer.status_code == 303
    stored = sluice.template("nudge")
    assert stored["source"] == written.replace("'Hi {{ visitor.first_name }}'", "'Still there?'")
    assert stored["definition"]["html"] == html.replace("\r\n", "\n")


def test_deleting_a_template_in_use_is_refused_saying_where(browser, sluice):
    answer = browser.post("/templates/nudge/delete", data={"csrf": csrf(browser)})
    assert answer.status_code == 409
    text = unescape(re.sub(r"<[^>]+>", "", answer.text))
    assert "Not deleted: nudge is used by onboarding / nudge_email" in " ".join(text.split())
    assert sluice.template("nudge")

    page = browser.get("/templates").text
    assert 'href="/flows/onboarding">onboarding</a> <span class="muted">/ nudge_email' in page

    browser.post(
        "/templates/_new",
        data={"csrf": csrf(browser), "key": "spare", "subject": "S", "html": "", "text": "T"},
    )
    answer = browser.post("/templates/spare/delete", data={"csrf": csrf(browser)})
    assert (answer.status_code, answer.headers["location"]) == (303, "/templates")
    assert browser.get("/templates/spare").status_code == 404
