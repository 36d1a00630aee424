"""One person, one visitor: the spellings of an address (case, a Unicode domain or its
IDNA form) find the same visitor through events, Bento's API, the native API and
erasure."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from api_support import api_in_process
from sluice.store.schema import events, visitors

SPELLINGS = ("anna@bücher.example", "Anna@XN--BCHER-KVA.example", "anna@BÜCHER.Example")
STORED = "anna@xn--bcher-kva.example"


@pytest.fixture
def api(app):
    with api_in_process(app) as api:
        yield api


def count(app, table) -> int:
    with app.db.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def test_every_spelling_of_an_address_is_one_visitor(api, app):
    api.post("/events", json={"type": "$signup", "email": SPELLINGS[0]})
    api.bento_post("/batch/events", {"events": [{"type": "$visit", "email": SPELLINGS[1]}]})
    imported = {"subscribers": [{"email": SPELLINGS[2], "plan": "pro"}]}
    assert api.bento_post("/batch/subscribers", imported).json()["results"] == 1
    tag = {"command": "add_tag", "email": SPELLINGS[1], "query": "vip"}
    assert api.bento_post("/fetch/commands", {"command": tag}).json()["results"] == 1

    assert count(app, visitors) == 1 and count(app, events) == 2
    for spelling in SPELLINGS:
        profile = api.get(f"/visitors/{spelling}").json()
        assert profile["email"] == STORED
        assert profile["fields"] == {"plan": "pro"} and profile["tags"] == ["vip"]
        found = api.bento_get("/fetch/subscribers", email=spelling).json()["data"]
        assert found["attributes"]["email"] == STORED
    created = api.bento_post("/fetch/subscribers", {"subscriber": {"email": SPELLINGS[2]}})
    assert created.status_code == 200  # it existed


def test_a_domain_without_an_idna_form_is_refused_at_the_edge(api, app):
    answer = api.post("/events", json={"type": "$signup", "email": "anna@bü-.example"})
    assert answer.status_code == 422
    [error] = answer.json()["errors"]
    assert error["loc"] == "email"
    assert error["msg"].startswith("the domain 'bü-.example' is not a valid domain name")
    bento = api.bento_post("/batch/subscribers", {"subscribers": [{"email": "a@bü-.example"}]})
    assert bento.status_code == 422
    assert bento.json()["errors"][0]["error"].startswith("email: the domain 'bü-.example'")
    assert count(app, visitors) == 0


def test_an_erased_address_is_never_emailed_in_any_spelling(api, app):
    api.post("/events", json={"type": "$signup", "email": SPELLINGS[0]})
    erase = {"data_deletion_request": {"email": SPELLINGS[1]}}
    assert api.bento_post("/data_deletion_requests", erase).json()["results"] == 1
    assert count(app, visitors) == 0
    for spelling in SPELLINGS:
        mail = {"to": spelling, "subject": "s", "html_body": "b", "transactional": True}
        refused = api.bento_post("/batch/emails", {"emails": [mail]})
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["error"] == (
            "to: the address was erased; it is never emailed again"
        )


def test_an_api_email_from_is_one_mailbox_without_line_breaks(api, app):
    mail = {"to": SPELLINGS[0], "subject": "s", "html_body": "<p>b</p>", "transactional": True}
    alone = api.bento_post("/batch/emails", {"emails": [{**mail, "from": "a@b.example\nc@d"}]})
    assert alone.status_code == 422
    assert alone.json()["errors"] == [
        {"index": 0, "error": "from: contains a line break: 'a@b.example\\nc@d'"}
    ]
    answer = api.bento_post(
        "/batch/emails",
        {
            "emails": [
                {**mail, "from": "Shop, Inc <shop@example.com>"},
                {**mail, "from": "Shop\r\nBcc: evil@example.com <shop@example.com>"},
                {**mail, "from": "shop@example.com, evil@example.com"},
                {**mail, "from": "x@[>"},  # the standard library's parser trips on it
            ]
        },
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["results"] == 1
    assert body["errors"] == [
        {
            "index": 1,
            "error": "from: contains a line break: "
            "'Shop\\r\\nBcc: evil@example.com <shop@example.com>'",
        },
        {"index": 2, "error": "from: not an email address: 'shop@example.com, evil@example.com'"},
        {"index": 3, "error": "from: not an email address: 'x@[>'"},
    ]
    [message] = api.get("/messages", params={"email": SPELLINGS[1]}).json()
    assert message["payload"]["to"] == STORED
    assert message["payload"]["from"] == "Shop, Inc <shop@example.com>"


NOT_SENDABLE = {
    "ü@example.com": "'ü@example.com': the part before @ must be ASCII (SMTPUTF8 is not used)",
    "<a@example.com>": "not an email address: '<a@example.com>'",
    "a@xn--zz.example": "the domain 'xn--zz.example' is not a valid domain name (Invalid A-label)",
    f"a@{'d' * 70}.example": f"the domain '{'d' * 70}.example' is not a valid domain name "
    "(Label too long)",
    f"{'l' * 65}@example.com": "the part before @ is longer than 64 characters",
    "a..b@example.com": "not an email address: 'a..b@example.com'",
    ".a@example.com": "not an email address: '.a@example.com'",
    "a@-example.com": "the domain '-example.com' is not a valid domain name "
    "(Label must not start or end with a hyphen)",
    "a@example.com.": "not an email address: 'a@example.com.'",
    f"{'l' * 64}@{'d' * 60}.{'d' * 60}.{'d' * 60}.example": "longer than 254 characters",
}


@pytest.mark.parametrize(("address", "msg"), NOT_SENDABLE.items(), ids=range(len(NOT_SENDABLE)))
def test_an_address_sluice_cannot_send_to_is_refused_at_every_edge(api, app, address, msg):
    event = api.post("/events", json={"type": "$signup", "email": address})
    assert (event.status_code, event.json()["errors"]) == (
        422,
        [{"index": 0, "loc": "email", "msg": msg}],
    )
    bento = api.bento_post("/batch/events", {"events": [{"type": "x", "email": address}]})
    assert bento.json()["errors"] == [{"index": 0, "error": f"email: {msg}"}]
    imported = api.bento_post("/batch/subscribers", {"subscribers": [{"email": address}]})
    assert imported.json()["errors"] == [{"index": 0, "error": f"email: {msg}"}]
    created = api.bento_post("/fetch/subscribers", {"subscriber": {"email": address}})
    assert created.status_code == 422 and msg in created.text
    moved = {"command": "change_email", "email": "ada@example.com", "query": address}
    assert api.bento_post("/fetch/commands", {"command": moved}).json()["errors"] == [
        {"index": 0, "error": f"query: {msg}"}
    ]
    email = {"to": address, "subject": "Hi", "html_body": "<p>Hi</p>", "transactional": True}
    sent = api.bento_post("/batch/emails", {"emails": [email]})
    assert sent.json()["errors"] == [{"index": 0, "error": f"to: {msg}"}]
    assert count(app, visitors) == 0 and count(app, events) == 0


def test_a_sessions_filter_by_something_that_is_no_address_is_422(api):
    answer = api.get("/sessions", params={"email": "notanemail"})
    assert answer.status_code == 422
    assert answer.json()["detail"] == [
        {"loc": "email", "msg": "not an email address: 'notanemail'"}
    ]
    assert api.get("/sessions", params={"email": "nobody@example.com"}).json() == []
