# ruff: noqa: F811 -- `sluice` is the fixture test_ui_pages defines, taken by name
"""The builder's round trip through `/ui/flows/{key}/document` (issue 11), on SQLite
and PostgreSQL: a document merged into the author's text keeps its comments, a text
gives its document, and every answer has the problems with their lines."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from sluice.api.app import create_app
from sluice.definitions.parse import load_documents
from sluice.service import Sluice
from test_ui_pages import (
    csrf,
    login,
    sluice,  # noqa: F401 (the fixture, shared)
)

COMMENTED = """\
# The onboarding flow: edited by hand and in the builder.
key: onboarding
name: Onboarding
trigger:
  event: $signup  # only sign-ups
steps:
  # First, say hello.
  - id: welcome
    email:
      subject: 'Welcome!'
      html: |
        <h1>Hi</h1>
        <p>Thanks for signing up.</p>
  # Give them two days.
  - id: settle
    wait: 2d
"""


@pytest.fixture
def browser(sluice) -> TestClient:
    with TestClient(create_app(sluice), follow_redirects=False) as client:
        login(client)
        yield client


def apply(sluice: Sluice, text: str) -> None:
    sluice.apply([("flow.yaml", d) for d in load_documents(text, "flow.yaml")])


def post(browser: TestClient, path: str, body, token: str | None = None):
    content = body if isinstance(body, str | bytes) else json.dumps(body)
    headers = {"X-CSRF-Token": token or csrf(browser), "Content-Type": "application/json"}
    return browser.post(path, content=content, headers=headers)


def test_a_builder_edit_is_merged_into_the_text_keeping_its_comments(browser, sluice):
    apply(sluice, COMMENTED)
    document = load_documents(COMMENTED)[0]
    document["steps"][1]["wait"] = "1d"
    document["steps"].append({"id": "tag_vip", "tag": {"add": ["vip"]}})
    answer = post(
        browser, "/ui/flows/onboarding/document", {"text": COMMENTED, "document": document}
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["problems"] == []
    assert body["document"] == document
    assert body["text"] == COMMENTED.replace("wait: 2d", "wait: 1d") + (
        "  - id: tag_vip\n    tag:\n      add:\n        - vip\n"
    )


def test_an_edited_text_gives_its_document_and_problems_at_their_lines(browser, sluice):
    apply(sluice, COMMENTED)
    broken = COMMENTED.replace("wait: 2d", "wait: 2 days")
    body = post(browser, "/ui/flows/onboarding/document", {"text": broken, "document": None}).json()
    assert body["text"] == broken
    assert body["document"]["steps"][1] == {"id": "settle", "wait": "2 days"}
    [problem] = body["problems"]
    assert problem["loc"] == "steps[1].wait" and problem["line"] == 16
    assert "invalid duration" in problem["msg"]


def test_a_text_that_is_not_yaml_has_no_document(browser):
    body = post(browser, "/ui/flows/_new/document", {"text": "key: x\nsteps: [\n"}).json()
    assert body["document"] is None
    assert "YAML syntax error" in body["problems"][0]["msg"] and body["problems"][0]["line"] >= 2


def test_a_new_flow_is_merged_and_its_key_must_be_free(browser, sluice):
    apply(sluice, COMMENTED)
    flow = load_documents(COMMENTED)[0]
    answer = post(browser, "/ui/flows/_new/document", {"text": "", "document": flow}).json()
    assert load_documents(answer["text"]) == [flow]
    assert any("exists already" in p["msg"] for p in answer["problems"])


@pytest.mark.parametrize(
    ("body", "loc", "message"),
    [
        ("{", "body", "not JSON: Expecting property name enclosed in double quotes"),
        ("[]", "body", "expected an object"),
        ({"document": None}, "body.text", "expected the YAML text"),
        ({"text": "x", "document": [1]}, "body.document", "an object"),
        ({"text": "x", "extra": 1}, "body.extra", "unknown field"),
        ('{"text": "a", "text": "b"}', "body", 'duplicate key "text"'),
        ({"text": "#" * (1024 * 1024 + 1)}, "body.text", "at most 1,048,576"),
        ('{"text": "\\ud800", "document": null}', "body.text", "lone surrogate"),
    ],
)
def test_a_bad_body_is_a_422_saying_what_is_wrong(browser, sluice, body, loc, message):
    apply(sluice, COMMENTED)
    for path in ("/ui/flows/_new/document", "/ui/flows/onboarding/document"):
        answer = post(browser, path, body)
        assert answer.status_code == 422, path
        [problem] = answer.json()["detail"]
        assert problem["loc"] == loc and message in problem["msg"], path


def test_the_round_trip_needs_a_login_and_the_csrf_token(browser):
    body = {"text": COMMENTED, "document": None}
    assert post(browser, "/ui/flows/_new/document", body, token="forged").status_code == 403
    browser.cookies.clear()
    assert post(browser, "/ui/flows/_new/document", body, token="x").status_code == 401
