"""Bento's API under /api/v1 as Bento's clients use it: what is stored, what starts
flows, and how bad requests and bad items are answered."""

from __future__ import annotations

import asyncio
import base64
import random
import time
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from api_support import api_in_process
from delivery_servers import SmtpServer
from sluice.service import Sluice
from sluice.settings import Settings
from sluice.store.schema import deliveries, events, sessions, visitors

WELCOME = """
key: welcome
trigger: {event: $signup}
steps:
  - id: hello
    email: {subject: 'Hi {{ visitor.first_name | default: "there" }}', html: '<p>Welcome</p>'}
"""
VIP = """
key: vip
trigger: {event: $tag, if: 'event.details.tag == "vip"'}
steps:
  - id: note
    tag: {add: [vip-welcomed]}
"""
BUYER = """
key: buyer
entry: every_time
trigger: {event: $purchase}
steps:
  - id: thanks
    tag: {add: [customer]}
"""


@pytest.fixture
def api(app):
    with api_in_process(app) as api:
        yield api


def count(app, table, *where) -> int:
    with app.db.read() as conn:
        query = sa.select(sa.func.count()).select_from(table)
        return conn.execute(query.where(*where) if where else query).scalar_one()


def signup(n: int) -> dict:
    return {"type": "$signup", "email": f"user{n}@example.com", "fields": {"first_name": f"U{n}"}}


# -- events ----------------------------------------------------------------------------


def test_a_batch_keeps_its_valid_events_and_names_each_bad_item_and_field(api, app, driver):
    api.put_flow(WELCOME)
    batch = [signup(n) for n in range(1000)]
    del batch[537]["email"]
    batch[901]["date"] = "yesterday"

    answer = api.bento_post("/batch/events", {"events": batch})

    assert answer.status_code == 200
    body = answer.json()
    assert body["results"] == 998
    assert body["failed"] == 2
    assert body["errors"][0] == {"index": 537, "error": "email: Field required"}
    assert body["errors"][1]["index"] == 901
    assert body["errors"][1]["error"].startswith("date: ")
    assert count(app, events) == 998
    assert count(app, sessions) == 998
    driver.run()
    assert driver.visitor("user0@example.com")["sessions"][0]["status"] == "completed"


def test_at_most_twenty_errors_are_listed_but_all_are_counted(api, app):
    batch = [{"type": "x", "email": "not-an-address"} for _ in range(30)] + [signup(1)]
    body = api.bento_post("/batch/events", {"events": batch}).json()
    assert body["results"] == 1
    assert body["failed"] == 30
    assert len(body["errors"]) == 20
    assert body["errors"][0]["error"] == "email: not an email address: 'not-an-address'"


def test_a_batch_with_no_valid_event_is_422_and_stores_nothing(api, app):
    answer = api.bento_post("/batch/events", {"events": [{"type": "x"}, {"email": "a@b.co"}]})
    assert answer.status_code == 422
    assert answer.json()["errors"] == [
        {"index": 0, "error": "email: Field required"},
        {"index": 1, "error": "type: Field required"},
    ]
    assert count(app, events) == 0
    assert count(app, visitors) == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"events": [signup(n) for n in range(1001)]}, "at most 1000"),
        ({"events": []}, "empty"),
        ({"events": {"type": "x"}}, "must be a list"),
        ({"event": [signup(1)]}, '"events" must be a list'),
    ],
)
def test_an_unusable_batch_is_400_and_stores_nothing(api, app, body, message):
    answer = api.bento_post("/batch/events", body)
    assert answer.status_code == 400
    assert message in answer.json()["error"]
    assert count(app, events) == 0


def test_malformed_json_is_400(api):
    answer = api.client.post(
        "/api/v1/batch/events",
        content=b'{"events": [',
        headers={**api.basic, "Content-Type": "application/json"},
        params={"site_uuid": api.site_uuid},
    )
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("the request body is not valid JSON")


def test_a_body_over_5_mib_is_413_before_anything_is_parsed(api, app):
    filler = "x" * (6 * 1024 * 1024)
    answer = api.bento_post("/batch/events", {"events": [signup(1)], "filler": filler})
    assert answer.status_code == 413
    assert answer.json() == {"error": "the request body is larger than 5 MiB"}
    assert count(app, events) == 0


def test_a_streamed_body_is_cut_off_at_5_mib_without_a_content_length(api, app):
    def chunks():
        yield b'{"events": [], "filler": "'
        for _ in range(7):
            yield b"x" * (1024 * 1024)
        yield b'"}'

    answer = api.client.post(
        "/api/v1/batch/events",
        content=chunks(),
        params={"site_uuid": api.site_uuid},
        headers={**api.basic, "Content-Type": "application/json"},
    )
    assert answer.status_code == 413
    assert count(app, events) == 0


def test_credentials_and_site_uuid_are_checked(api, app):
    body = {"events": [signup(1)], "site_uuid": api.site_uuid}
    url = "/api/v1/batch/events"
    assert api.client.post(url, json=body).status_code == 401
    wrong = base64.b64encode(f"{api.publishable_key}:wrong".encode()).decode()
    refused = api.client.post(url, json=body, headers={"Authorization": f"Basic {wrong}"})
    assert refused.status_code == 401
    assert refused.json() == {"error": "invalid publishable key or secret key"}
    assert refused.headers["WWW-Authenticate"].startswith("Basic")
    other_site = api.client.post(url, json={**body, "site_uuid": "other"}, headers=api.basic)
    assert other_site.status_code == 401
    assert other_site.json() == {"error": "site_uuid does not match this installation"}
    no_site = api.client.post(url, json={"events": [signup(1)]}, headers=api.basic)
    assert no_site.status_code == 401
    assert count(app, events) == 0
    in_query = api.client.post(
        url, json={"events": [signup(1)]}, params={"site_uuid": api.site_uuid}, headers=api.basic
    )
    assert in_query.status_code == 200


def test_a_repeated_purchase_with_the_same_key_is_stored_once(api, app, driver):
    api.put_flow(BUYER)
    purchase = {
        "type": "$purchase",
        "email": "ada@example.com",
        "details": {"unique": {"key": "order-1"}, "value": {"currency": "EUR", "amount": 100}},
    }
    for _ in range(2):
        answer = api.bento_post("/batch/events", {"events": [purchase]})
        assert answer.json() == {"results": 1, "failed": 0, "errors": []}
    assert count(app, events) == 1
    assert count(app, sessions) == 1


def test_bento_event_types_change_the_visitor_before_flows_match(api, app, driver):
    api.put_flow(VIP)
    api.bento_post(
        "/batch/events",
        {
            "events": [
                {"type": "$subscribe", "email": "ada@example.com", "fields": {"plan": "pro"}},
                {"type": "$update_fields", "email": "ada@example.com", "fields": {"seats": 3}},
                {"type": "$tag", "email": "ada@example.com", "details": {"tag": "vip"}},
                {"type": "$unsubscribe", "email": "ada@example.com", "details": None},
            ]
        },
    )
    driver.run()
    ada = driver.visitor("ada@example.com")
    assert ada["fields"] == {"plan": "pro", "seats": 3}
    assert set(ada["tags"]) == {"vip", "vip-welcomed"}
    assert ada["subscribed"] is False
    assert [s["flow"] for s in ada["sessions"]] == ["vip"]


# -- imports and commands --------------------------------------------------------------


def test_imported_subscribers_get_fields_and_tags_and_trigger_nothing(api, app):
    api.put_flow(VIP)
    api.put_flow(WELCOME)
    answer = api.bento_post(
        "/batch/subscribers",
        {
            "subscribers": [
                {"email": "ada@example.com", "first_name": "Ada", "tags": "vip,beta"},
                {"email": "bob@example.com", "tags": ["vip"], "remove_tags": "beta"},
                {"email": "broken"},
            ]
        },
    )
    assert answer.json() == {
        "results": 2,
        "failed": 1,
        "errors": [{"index": 2, "error": "email: not an email address: 'broken'"}],
    }
    ada = app.visitor("ada@example.com")
    assert ada["fields"] == {"first_name": "Ada"}
    assert ada["tags"] == ["vip", "beta"]
    assert count(app, events) == 0
    assert count(app, sessions) == 0
    again = api.bento_post(
        "/batch/subscribers", {"subscribers": [{"email": "ada@example.com", "remove_tags": "beta"}]}
    )
    assert again.json()["results"] == 1
    assert app.visitor("ada@example.com")["tags"] == ["vip"]


def test_every_command_changes_data_and_only_add_tag_via_event_triggers(api, app, driver):
    api.put_flow(VIP)
    email = "ada@example.com"
    commands = [
        {"command": "add_tag", "email": email, "query": "vip"},
        {"command": "add_field", "email": email, "query": {"key": "plan", "value": "pro"}},
        {"command": "add_field", "email": email, "query": {"key": "seats", "value": 3}},
        {"command": "remove_field", "email": email, "query": "seats"},
        {"command": "unsubscribe", "email": email},
    ]
    for command in commands:  # one at a time, as Bento's SDKs send them
        assert api.bento_post("/fetch/commands", {"command": command}).json()["results"] == 1
    ada = app.visitor(email)
    assert (ada["tags"], ada["fields"], ada["subscribed"]) == (["vip"], {"plan": "pro"}, False)
    assert count(app, events) == 0
    assert count(app, sessions) == 0

    listed = [
        {"command": "subscribe", "email": email},
        {"command": "remove_tag", "email": email, "query": "vip"},
        {"command": "add_tag_via_event", "email": email, "query": "vip"},
    ]
    assert api.bento_post("/fetch/commands", {"command": listed}).json()["results"] == 3
    driver.run()
    ada = app.visitor(email)
    assert ada["subscribed"] is True
    assert [e["type"] for e in ada["events"]] == ["$tag"]
    assert [s["flow"] for s in ada["sessions"]] == ["vip"]
    assert "vip-welcomed" in ada["tags"]

    moved = api.bento_post(
        "/fetch/commands",
        {"command": {"command": "change_email", "email": email, "query": "ada@new.example"}},
    )
    assert moved.json()["results"] == 1
    assert app.visitor("ada@new.example")["uuid"] == ada["uuid"]


def test_bad_commands_are_reported_by_index_and_field(api, app):
    api.bento_post("/batch/subscribers", {"subscribers": [{"email": "bob@example.com"}]})
    answer = api.bento_post(
        "/fetch/commands",
        {
            "command": [
                {"command": "add_tag", "email": "ada@example.com", "query": "ok"},
                {"command": "launch", "email": "ada@example.com"},
                {"command": "add_field", "email": "ada@example.com", "query": "no-value"},
                {"command": "change_email", "email": "ada@example.com", "query": "bob@example.com"},
            ]
        },
    )
    body = answer.json()
    assert body["results"] == 1
    assert [e["index"] for e in body["errors"]] == [1, 2, 3]
    assert body["errors"][0]["error"].startswith("command: unknown command 'launch'")
    assert body["errors"][1]["error"] == "query: must be an object {key, value}"
    assert "already the email of another visitor" in body["errors"][2]["error"]
    assert app.visitor("ada@example.com")["tags"] == ["ok"]


# -- subscribers, tags, fields, workflows ----------------------------------------------


def test_subscribers_are_found_by_email_or_uuid_and_created(api, app):
    assert api.bento_get("/fetch/subscribers", email="nobody@example.com").json() == {}
    created = api.bento_post("/fetch/subscribers", {"subscriber": {"email": "Ada@Example.com"}})
    assert created.status_code == 201
    data = created.json()["data"]
    assert data["type"] == "visitors"
    assert data["attributes"]["email"] == "Ada@example.com"  # the domain lower-cased
    again = api.bento_post("/fetch/subscribers", {"subscriber": {"email": "ada@example.com"}})
    assert again.status_code == 200
    api.bento_post(
        "/fetch/commands",
        {"command": {"command": "add_tag", "email": "ada@example.com", "query": "vip"}},
    )
    by_email = api.bento_get("/fetch/subscribers", email="ADA@example.com").json()["data"]
    by_uuid = api.bento_get("/fetch/subscribers", uuid=data["attributes"]["uuid"]).json()["data"]
    assert by_email == by_uuid
    assert by_email["attributes"]["tags"] == ["vip"]
    tag_ids = {
        t["attributes"]["name"]: t["id"] for t in api.bento_get("/fetch/tags").json()["data"]
    }
    assert by_email["attributes"]["cached_tag_ids"] == [tag_ids["vip"]]
    assert count(app, events) == 0
    bad = api.bento_post("/fetch/subscribers", {"subscriber": {"email": "nope"}})
    assert bad.status_code == 422
    assert bad.json()["error"] == "subscriber: email: not an email address: 'nope'"


def test_tags_and_fields_that_flow_steps_add_are_listed_at_once(api, driver):
    driver.apply(
        """
key: grade
trigger: {event: graded}
steps:
  - {id: mark, tag: {add: ['{{ event.details.grade }}-customer']}}
  - {id: note, field: {set: {lifetimeValue: '{{ event.details.value }}'}}}
"""
    )
    driver.send("graded", "ada@example.com", details={"grade": "gold", "value": 120})
    driver.run()
    tags = [t["attributes"]["name"] for t in api.bento_get("/fetch/tags").json()["data"]]
    fields = api.bento_get("/fetch/fields").json()["data"]
    assert tags == ["gold-customer"]
    assert [(f["attributes"]["key"], f["attributes"]["name"]) for f in fields] == [
        ("lifetimeValue", "Lifetime Value")
    ]


def test_tags_and_fields_are_registered_once_with_names(api):
    first = api.bento_post("/fetch/tags", {"tag": {"name": "vip"}})
    assert first.status_code == 201
    assert api.bento_post("/fetch/tags", {"tag": {"name": "vip"}}).status_code == 200
    assert first.json()["data"][0]["attributes"]["name"] == "vip"
    api.bento_post("/fetch/fields", {"field": {"key": "thisIsAKey"}})
    api.bento_post(
        "/batch/events",
        {"events": [{"type": "x", "email": "a@example.com", "fields": {"last_name": "L"}}]},
    )
    fields = api.bento_get("/fetch/fields").json()["data"]
    assert [(f["type"], f["attributes"]["key"], f["attributes"]["name"]) for f in fields] == [
        ("visitors-fields", "thisIsAKey", "This Is A Key"),
        ("visitors-fields", "last_name", "Last Name"),
    ]
    assert [t["attributes"]["name"] for t in api.bento_get("/fetch/tags").json()["data"]] == ["vip"]
    assert api.bento_post("/fetch/tags", {"tag": {"name": ""}}).status_code == 422
    assert api.bento_post("/fetch/tags", {"name": "vip"}).status_code == 400


def test_workflows_are_the_flows_live_when_on(api):
    api.put_flow(WELCOME)
    api.put_flow(VIP, on=False)
    workflows = api.bento_get("/fetch/workflows").json()["data"]
    by_id = {w["id"]: w["attributes"] for w in workflows}
    assert by_id["welcome"]["status"] == "live"
    assert by_id["vip"]["status"] == "draft"
    assert by_id["welcome"]["email_templates"][0]["subject"].startswith("Hi {{")
    assert api.bento_get("/fetch/workflows", page=2).json() == {"data": []}


# -- emails and erasure ----------------------------------------------------------------


def test_transactional_emails_take_the_delivery_path_into_the_outbox(api, app):
    api.bento_post(
        "/fetch/commands", {"command": {"command": "unsubscribe", "email": "gone@example.com"}}
    )
    email = {
        "to": "bob@example.com",
        "from": "Shop <shop@example.com>",
        "subject": "Order {{ order }}",
        "html_body": "<p>Thanks, {{ name }}!</p>",
        "transactional": True,
        "personalizations": {"name": "Bob", "order": 42},
    }
    answer = api.bento_post(
        "/batch/emails",
        {
            "emails": [
                email,
                {**email, "to": "gone@example.com", "transactional": False},
                {**email, "html_body": "{% if %}"},
                {**email, "subject": None},
            ]
        },
    )
    body = answer.json()
    assert body["results"] == 1
    assert [e["index"] for e in body["errors"]] == [1, 2, 3]
    assert "unsubscribed" in body["errors"][0]["error"]
    assert body["errors"][1]["error"].startswith("html_body: Liquid syntax error")
    assert body["errors"][2]["error"] == "subject: Field required"
    [message] = api.get("/messages", params={"email": "bob@example.com"}).json()
    assert message["state"] == "outbox"
    assert message["session_id"] is None
    assert message["payload"]["subject"] == "Order 42"
    assert message["payload"]["html"] == "<p>Thanks, Bob!</p>"
    assert message["payload"]["from"] == "Shop <shop@example.com>"
    assert count(app, deliveries) == 1


def test_api_emails_escape_personalizations_in_html_and_refuse_templates_over_limits(api, clock):
    clock.set(datetime(2031, 7, 4, 9, 30, tzinfo=UTC))
    email = {
        "to": "bob@example.com",
        "subject": "Hi {{ name }} ({{ 'now' | date: '%Y' }})",
        "html_body": "<p>Hi {{ name }}</p>{{ footer | raw }}",
        "transactional": True,
        "personalizations": {"name": "<b>Bob</b>", "footer": "<hr>", "n": 100000000},
    }
    heavy = {**email, "html_body": "{{ (1..n) | reverse | first }}"}
    started = time.monotonic()
    answer = api.bento_post("/batch/emails", {"emails": [email, heavy]})
    assert time.monotonic() - started < 3
    assert answer.json()["results"] == 1
    [error] = answer.json()["errors"]
    assert error["index"] == 1
    assert error["error"] == (
        "html_body: Liquid error at 1:13: loop iteration limit reached: "
        "a range of 100000000 items (at most 10000)"
    )
    [message] = api.get("/messages", params={"email": "bob@example.com"}).json()
    assert message["payload"]["html"] == "<p>Hi &lt;b&gt;Bob&lt;/b&gt;</p><hr>"
    assert message["payload"]["subject"] == "Hi <b>Bob</b> (2031)"  # the app's clock
    alone = api.bento_post("/batch/emails", {"emails": [heavy]})
    assert alone.status_code == 422
    assert "loop iteration limit reached" in alone.json()["errors"][0]["error"]


def test_a_data_deletion_request_erases_the_visitor(api, app):
    api.bento_post("/batch/events", {"events": [signup(1)]})
    request = {"data_deletion_request": {"email": "user1@example.com"}}
    assert api.bento_post("/data_deletion_requests", request).json()["results"] == 1
    assert api.bento_get("/fetch/subscribers", email="user1@example.com").json() == {}
    assert count(app, events) == 0
    assert api.bento_post("/data_deletion_requests", request).json()["results"] == 0
    # an erased address is never emailed again by accident
    mail = {"to": "user1@example.com", "subject": "s", "html_body": "b", "transactional": True}
    refused = api.bento_post("/batch/emails", {"emails": [mail]})
    assert refused.status_code == 422
    assert "erased" in refused.json()["errors"][0]["error"]


def test_with_smtp_an_api_email_is_pending_and_the_dispatcher_sends_it(database_url, clock):
    with SmtpServer(clock) as smtp:
        settings = Settings(
            database_url=database_url,
            signing_key="k",
            smtp_url=smtp.url,
            mail_from="Acme <hello@acme.test>",
        )
        app = Sluice(settings, clock)
        try:
            with api_in_process(app) as api:
                mail = {
                    "to": "bob@example.com",
                    "subject": "Your code is {{ code }}",
                    "html_body": "<p>Code: <b>{{ code }}</b></p>",
                    "transactional": True,
                    "personalizations": {"code": "1234"},
                }
                assert api.bento_post("/batch/emails", {"emails": [mail]}).json()["results"] == 1
                assert api.get("/messages").json()[0]["state"] == "pending"
                assert asyncio.run(app.dispatcher(rng=random.Random(1)).run_once()) == 1
                [received] = smtp.received
                assert received.recipients == ["bob@example.com"]
                assert received.sender == "hello@acme.test"
                assert received.message["Subject"] == "Your code is 1234"
                assert "Code: <b>1234</b>" in received.message.get_body(("html",)).get_content()
                assert api.get("/messages").json()[0]["state"] == "sent"
        finally:
            app.close()


def test_site_stats_count_the_visitors_and_their_subscription(api, app):
    api.bento_post(
        "/batch/subscribers", {"subscribers": [{"email": f"s{n}@example.com"} for n in range(3)]}
    )
    api.bento_post(
        "/fetch/commands", {"command": [{"command": "unsubscribe", "email": "s1@example.com"}]}
    )
    answer = api.bento_get("/stats/site")
    assert answer.status_code == 200
    assert answer.json() == {"user_count": 3, "subscriber_count": 2, "unsubscriber_count": 1}
    assert api.bento_get("/stats/site", site_uuid="another-site").status_code in (401, 403)


def test_deleting_a_tag_takes_it_from_every_subscriber_and_starts_nothing(api, app, driver):
    driver.apply("key: back\ntrigger: {tag_added: vip}\nsteps: [{exit: true}]")
    api.bento_post(
        "/batch/subscribers",
        {
            "subscribers": [
                {"email": "a@example.com", "tags": "vip,x"},
                {"email": "b@example.com", "tags": "x"},
            ]
        },
    )
    vip = next(
        t for t in api.bento_get("/fetch/tags").json()["data"] if t["attributes"]["name"] == "vip"
    )

    def delete(tag_id, name):
        return api.client.request(
            "DELETE",
            f"/api/v1/fetch/tags/{tag_id}",
            json={"tag": {"name": name}, "site_uuid": api.site_uuid},
            headers=api.basic,
        )

    wrong = delete(vip["id"], "x")
    assert (wrong.status_code, wrong.json()) == (
        404,
        {"error": f"no tag with id '{vip['id']}' named 'x'"},
    )
    assert delete("not-a-number", "vip").status_code == 404
    done = delete(vip["id"], "vip")
    assert (done.status_code, done.json()) == (
        200,
        {"message": "Tag vip deleted; 1 subscriber(s) had it"},
    )
    assert driver.visitor("a@example.com")["tags"] == ["x"]
    assert driver.visitor("b@example.com")["tags"] == ["x"]
    assert "vip" not in {
        t["attributes"]["name"] for t in api.bento_get("/fetch/tags").json()["data"]
    }
    assert delete(vip["id"], "vip").status_code == 404
    driver.run()
    assert app.sessions() == []


def test_an_import_starts_flows_only_when_it_asks_to(api, app, driver):
    driver.apply("key: welcome-vip\ntrigger: {tag_added: vip}\nsteps: [{exit: true}]")
    quiet = {"subscribers": [{"email": "a@example.com", "tags": "vip"}]}
    asking = {"subscribers": [{"email": "b@example.com", "tags": "vip"}], "start_flows": True}
    assert api.bento_post("/batch/subscribers", quiet).json()["results"] == 1
    assert api.bento_post("/batch/subscribers", asking).json()["results"] == 1
    driver.run()
    assert [s["flow"] for s in app.sessions(email="a@example.com")] == []
    assert [s["flow"] for s in app.sessions(email="b@example.com")] == ["welcome-vip"]
    bad = api.bento_post("/batch/subscribers", {**asking, "start_flows": "yes"})
    assert (bad.status_code, bad.json()) == (400, {"error": '"start_flows" must be true or false'})
