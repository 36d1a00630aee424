"""What the builder's "See it as a visitor" asks of the API: `GET /api/visitors?q=` finds
visitors as the UI's search does (store/visitor_search.py), a page at a time, and a
simulation of a draft takes the body the try-out sends (ui/frontend/src/builder/tryout.jsx)."""

from __future__ import annotations

import pytest

from api_support import api_in_process


@pytest.fixture
def api(app):
    with api_in_process(app) as api:
        for email, fields in [
            ("ada@example.com", {"plan": "pro", "city": "New York"}),
            ("bob@example.com", {"plan": "free"}),
            ("Cleo@shop.example.org", {"plan": "Pro"}),
            ("dan@example.com", {}),
        ]:
            sent = api.post("/events", json={"type": "visit", "email": email, "fields": fields})
            assert sent.status_code == 200, sent.text
        tagged = api.bento_post(
            "/fetch/commands",
            {"command": {"command": "add_tag", "email": "bob@example.com", "query": "vip"}},
        )
        assert tagged.status_code == 200, tagged.text
        yield api


def emails(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [visitor["email"] for visitor in response.json()]


def test_the_search_finds_visitors_by_address_field_and_tag(api):
    assert emails(api.get("/visitors", params={"q": "example.com"})) == [
        "dan@example.com",
        "bob@example.com",
        "ada@example.com",
    ]
    assert emails(api.get("/visitors", params={"q": "SHOP"})) == ["Cleo@shop.example.org"]
    assert emails(api.get("/visitors", params={"q": "plan:pro"})) == [
        "Cleo@shop.example.org",
        "ada@example.com",
    ]
    assert emails(api.get("/visitors", params={"q": 'city:"new york" ada'})) == ["ada@example.com"]
    assert emails(api.get("/visitors", params={"tag": "vip"})) == ["bob@example.com"]
    assert emails(api.get("/visitors", params={"q": "nobody"})) == []


def test_a_found_visitor_has_what_the_try_out_needs(api):
    (bob,) = api.get("/visitors", params={"q": "bob@example.com"}).json()
    assert bob["fields"] == {"plan": "free"}
    assert bob["tags"] == ["vip"]
    assert bob["subscribed"] is True
    assert set(bob) == {
        "email",
        "uuid",
        "fields",
        "tags",
        "subscribed",
        "unsubscribed_at",
        "created_at",
    }


def test_the_search_pages_newest_first_with_a_cursor(api):
    first = api.get("/visitors", params={"limit": 3})
    assert emails(first) == ["dan@example.com", "Cleo@shop.example.org", "bob@example.com"]
    link = first.headers["Link"]
    assert link.endswith('>; rel="next"')
    second = api.client.get(link[1 : link.index(">")], headers=api.bearer)
    assert emails(second) == ["ada@example.com"]
    assert "Link" not in second.headers


@pytest.mark.parametrize(
    ("params", "loc"),
    [({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"cursor": "nonsense"}, "cursor")],
)
def test_bad_paging_is_refused_with_where(api, params, loc):
    refused = api.get("/visitors", params=params)
    assert refused.status_code == 422
    assert any(loc in problem["loc"] for problem in refused.json()["detail"])


def test_the_search_needs_the_secret_key_and_is_documented(api):
    assert api.client.get("/api/visitors").status_code == 401
    document = api.get("/openapi.json").json()
    operation = document["paths"]["/api/visitors"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"q", "tag", "limit", "cursor"}
    assert "VisitorSummary" in document["components"]["schemas"]


@pytest.mark.parametrize("q", ['a"b', "%_", "plan:", ":x", "'", "plan:é", "ü"])
def test_any_search_words_find_what_they_say(api, q):
    found = api.get("/visitors", params={"q": q, "tag": q})
    assert found.status_code == 200, found.text
    assert found.json() == []


def test_a_nul_in_the_search_is_refused(api):
    assert api.get("/visitors", params={"q": "plan:\x00"}).status_code == 400


DRAFT = {
    "key": "welcome-draft",
    "trigger": {"event": "$signup", "if": 'visitor.fields.plan != "enterprise"'},
    "steps": [
        {"id": "hello", "email": {"subject": "Hi {{ visitor.first_name }}", "html": "<p>Hi</p>"}},
        {"id": "settle", "wait": "2d"},
        {"id": "vip", "if": 'visitor.tags contains "vip"', "then": [{"tag": {"add": ["x"]}}]},
    ],
}


def test_the_try_out_simulates_a_draft_that_was_never_saved(api):
    body = {
        "visitor": {"email": "bob@example.com", "fields": {"first_name": "Bob"}, "tags": ["vip"]},
        "events": [
            {"at": "+0s", "type": "$signup"},
            {"at": "+3d", "type": "x", "details": {"a": "b"}},
        ],
        "definition": DRAFT,
    }
    simulated = api.post("/flows/welcome-draft/simulate", json=body)
    assert simulated.status_code == 200, simulated.text
    (session,) = simulated.json()["sessions"]
    path = [entry["step"] for entry in session["timeline"] if entry["kind"] == "step"]
    assert path == ["hello", "settle", "vip", "steps.2.then.0"]
    sent = next(e for e in session["timeline"] if e["kind"] == "email_sent")
    assert sent["data"]["subject"] == "Hi Bob"
    assert api.get("/flows/welcome-draft").status_code == 404
