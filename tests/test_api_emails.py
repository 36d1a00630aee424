"""Trying an email before saving it: `POST /api/emails/render` shows it as a visitor
would receive it, `POST /api/emails/test` sends it to an address of the person's
choice (a real SMTP server on loopback, or the outbox), and a template that a flow
uses cannot be deleted."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from api_support import api_in_process
from delivery_servers import SmtpServer
from sluice import links, previews
from sluice.service import Sluice
from sluice.settings import Settings
from sluice.store.schema import deliveries, events, sessions, test_emails, timeline, visitors

NUDGE = """
kind: template
key: nudge
subject: 'Need a hand, {{ visitor.first_name | default: "friend" }}?'
html: >-
  <html><head><style>p.lead { color: #336699; }</style></head>
  <body><p class="lead">Hello {{ visitor.first_name }}, you have {{ event.details.items }} items.</p></body></html>
"""

ONBOARDING = """
key: onboarding
trigger: {event: $signup}
steps:
  - id: welcome
    email: {subject: 'Welcome!', html: '<p>Hi</p>'}
  - id: nudge_email
    email: {template: nudge}
"""

ZOE = {"email": "zoe@example.com", "fields": {"first_name": "Zoë <b>"}, "tags": ["vip"]}


@pytest.fixture
def api(app):
    with api_in_process(app) as api:
        yield api


def put_template(api, text: str, key: str = "nudge"):
    answer = api.put(
        f"/templates/{key}", content=text, headers={"Content-Type": "application/yaml"}
    )
    assert answer.status_code in (200, 201), answer.text
    return answer


def count(app, table) -> int:
    with app.db.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


# -- render ------------------------------------------------------------------------------


def test_a_template_renders_for_a_made_up_visitor_as_it_would_be_sent(api):
    put_template(api, NUDGE)
    answer = api.post(
        "/emails/render",
        json={
            "visitor": ZOE,
            "email": {"template": "nudge"},
            "event": {"type": "cart", "details": {"items": 3}},
        },
    )
    assert answer.status_code == 200, answer.text
    email = answer.json()
    assert email["problems"] == []
    assert email["subject"] == "Need a hand, Zoë <b>?"  # subjects are not HTML-escaped
    # The CSS is inlined as delivery inlines it; data in the HTML is escaped (SPEC §7).
    assert 'style="color: #336699' in email["html"]
    assert "Hello Zoë &lt;b&gt;, you have 3 items." in email["html"]
    assert "<style>" not in email["html"]
    assert email["text"] == "Hello Zoë <b>, you have 3 items."  # made from the HTML
    assert email["to"] == "zoe@example.com"
    assert email["from"] == "Sluice <noreply@localhost>"


def test_a_stored_visitor_is_rendered_with_its_fields_and_inline_parts_override(api):
    api.post(
        "/events",
        json={"type": "$signup", "email": "ann@example.com", "fields": {"first_name": "Ann"}},
    )
    put_template(api, NUDGE)
    answer = api.post(
        "/emails/render",
        json={
            "visitor_email": "ann@example.com",
            "email": {
                "template": "nudge",
                "subject": "Hi {{ visitor.first_name }}",
                "text": "Plain",
            },
        },
    )
    email = answer.json()
    assert (email["subject"], email["text"]) == ("Hi Ann", "Plain")
    assert "Hello Ann, you have  items." in email["html"]


def test_liquid_errors_and_unknown_templates_are_problems_located_in_the_email(api):
    answer = api.post(
        "/emails/render",
        json={"visitor": ZOE, "email": {"subject": "Hi {% if %}", "html": "<p>x</p>"}},
    )
    assert answer.status_code == 200
    email = answer.json()
    assert email["subject"] is None and email["html"] is None
    assert [p["loc"] for p in email["problems"]] == ["email.subject"]
    assert "Liquid syntax error at 1:" in email["problems"][0]["msg"]

    answer = api.post("/emails/render", json={"visitor": ZOE, "email": {"template": "gone"}})
    assert answer.json()["problems"] == [
        {"loc": "email.template", "msg": "unknown template 'gone'"}
    ]

    answer = api.post(
        "/emails/render",
        json={"visitor": ZOE, "email": {"subject": "x", "text": "y", "to": "{{ visitor.boss }}"}},
    )
    assert answer.json()["problems"][0]["loc"] == "email.to"


def test_html_nested_too_deeply_to_inline_is_a_problem_and_the_server_answers(api):
    # 100,000 nested elements crashed the CSS inliner, and the server with it.
    deep = {"subject": "x", "html": "<div>" * 100_000}
    answer = api.post("/emails/render", json={"visitor": {"email": "a@b.c"}, "email": deep})
    assert answer.status_code == 200
    assert answer.json()["html"] is None
    assert answer.json()["problems"] == [
        {
            "loc": "email.html",
            "msg": "the HTML nests elements more than 500 levels deep (at most 500)",
        }
    ]
    # Nested only once rendered: by a loop, or by a field's HTML output raw.
    looped = {"subject": "x", "html": "{% for i in (1..600) %}<div>{% endfor %}"}
    raw = {"subject": "x", "html": "<p>{{ visitor.bio | raw }}</p>"}
    deep_visitor = {"email": "a@b.c", "fields": {"bio": "<div>" * 100_000}}
    for email in (looped, raw):
        answer = api.post("/emails/render", json={"visitor": deep_visitor, "email": email})
        assert answer.status_code == 200
        [problem] = answer.json()["problems"]
        assert problem["loc"] == "email.html" and "once rendered" in problem["msg"]
    answer = api.post("/emails/test", json={"visitor": deep_visitor, "email": raw, "to": "t@b.c"})
    assert answer.status_code == 422
    # Deep, but within the limit, and elements that close or hold nothing count no level.
    fine = "<div>" * 499 + "<br><img src=x><p>a<p>b" + "</div>" * 499 + "<span></span>" * 1000
    answer = api.post(
        "/emails/render", json={"visitor": ZOE, "email": {"subject": "x", "html": fine}}
    )
    assert answer.json()["problems"] == [] and answer.json()["html"].count("<div") == 499
    answer = api.put(
        "/templates/deep",
        content="kind: template\nkey: deep\nsubject: x\nhtml: '" + "<b>" * 501 + "'\n",
        headers={"Content-Type": "application/yaml"},
    )
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == "html"


@pytest.mark.parametrize(
    "body, loc",
    [
        ({"email": {"subject": "x", "text": "y"}}, ""),
        ({"visitor": ZOE, "visitor_email": "a@b.c", "email": {}}, ""),
        ({"visitor": {"fields": {}}, "email": {}}, "visitor.email"),
        ({"visitor": ZOE}, "email"),
        ({"visitor": ZOE, "email": "hi"}, "email"),
        (
            {"visitor_email": "nobody@example.com", "email": {"subject": "x", "text": "y"}},
            "visitor_email",
        ),
    ],
)
def test_bad_requests_are_refused_saying_where(api, body, loc):
    answer = api.post("/emails/render", json=body)
    assert answer.status_code == 422, answer.text
    assert loc in [p["loc"] for p in answer.json()["detail"]]


@pytest.mark.parametrize("path", ["/emails/render", "/emails/test"])
def test_a_made_up_visitors_bad_address_or_an_unknown_flow_is_refused_where_it_is(api, app, path):
    """Named where the request says it (not where the email uses it), nothing sent."""
    to = {"to": "me@acme.test"} if path == "/emails/test" else {}
    email = {"subject": "Hi {{ flow.version }}", "text": "t"}
    answer = api.post(path, json={**to, "visitor": {"email": "bad"}, "email": email})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"] == [
        {"loc": "visitor.email", "msg": "not an email address: 'bad'"}
    ]
    answer = api.post(path, json={**to, "visitor": ZOE, "email": email, "flow": "nope"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"] == [{"loc": "flow", "msg": "unknown flow 'nope'"}]
    assert count(app, test_emails) == 0


def test_rendering_needs_the_secret_key(api):
    answer = api.client.post("/api/emails/render", json={"visitor": ZOE, "email": {}})
    assert answer.status_code == 401


# -- test sends --------------------------------------------------------------------------


def test_without_smtp_a_test_goes_to_the_outbox_and_touches_nothing_else(api, app):
    api.put_flow(ONBOARDING.replace("{template: nudge}", "{subject: s, text: t}"))
    api.post("/events", json={"type": "$signup", "email": "ann@example.com"})
    stats_before = api.get("/flows/onboarding/stats").json()
    counts = {t.name: count(app, t) for t in (deliveries, sessions, timeline, events, visitors)}

    answer = api.post(
        "/emails/test",
        json={
            "to": "me@acme.test",
            "visitor_email": "ann@example.com",
            "email": {"subject": "Hello {{ visitor.email }}", "html": "<p>Hi</p>"},
        },
    )
    assert answer.status_code == 200, answer.text
    sent = answer.json()
    assert sent["delivered_to"] == "outbox"
    assert sent["message_id"].startswith("<test.")

    with app.db.read() as conn:
        kept = conn.execute(sa.select(test_emails)).one()
    assert kept.payload["to"] == "me@acme.test"
    assert kept.payload["subject"] == "[Test] Hello ann@example.com"
    assert kept.payload["track"] is False
    assert {
        t.name: count(app, t) for t in (deliveries, sessions, timeline, events, visitors)
    } == counts
    assert api.get("/flows/onboarding/stats").json() == stats_before

    # Erasing the visitor it was rendered for erases the test too: it holds its data.
    assert api.delete("/visitors/ann@example.com").status_code == 200
    assert count(app, test_emails) == 0


def test_with_smtp_a_test_is_sent_at_once_to_the_address_given(database_url, clock):
    with SmtpServer(clock) as smtp:
        app = Sluice(
            Settings(
                database_url=database_url,
                signing_key="k",
                smtp_url=smtp.url,
                mail_from="Acme <hello@acme.test>",
            ),
            clock,
        )
        try:
            with api_in_process(app) as api:
                put_template(api, NUDGE)
                answer = api.post(
                    "/emails/test",
                    json={"to": "me@acme.test", "visitor": ZOE, "email": {"template": "nudge"}},
                )
                assert answer.status_code == 200, answer.text
                assert answer.json()["delivered_to"] == "smtp"
                smtp.answers.append("550 no such mailbox")
                refused = api.post(
                    "/emails/test",
                    json={"to": "me@acme.test", "visitor": ZOE, "email": {"template": "nudge"}},
                )
            assert count(app, test_emails) == 0
            assert count(app, deliveries) == 0
        finally:
            app.close()
    assert refused.status_code == 502
    assert "550 no such mailbox" in refused.json()["detail"]
    [received] = smtp.received
    message = received.message
    assert received.recipients == ["me@acme.test"]
    assert message["Subject"] == "[Test] Need a hand, Zoë <b>?"
    assert message["Message-ID"] == answer.json()["message_id"]
    html = message.get_body(("html",)).get_content()
    assert "Hello Zoë &lt;b&gt;" in html and 'style="color: #336699' in html
    # The unsubscribe link names no visitor: following it cannot unsubscribe anyone.
    inert = links.unsubscribe_url(app.settings.public_url, b"k", previews.NO_VISITOR)
    assert message["List-Unsubscribe"] == f"<{inert}>"


def test_a_test_of_an_email_with_problems_or_to_a_bad_address_is_refused(api, app):
    answer = api.post(
        "/emails/test", json={"to": "me@acme.test", "visitor": ZOE, "email": {"subject": "{{"}}
    )
    assert answer.status_code == 422
    answer = api.post(
        "/emails/test",
        json={"to": "not an address", "visitor": ZOE, "email": {"subject": "s", "text": "t"}},
    )
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == "to"
    assert count(app, test_emails) == 0


@pytest.mark.parametrize(
    "to",
    [
        "a" * 65 + "@x.com",  # a local part over 64 characters
        "a@-b.com",
        "a@xn--.com",
        "a@b",  # a domain without a dot
        "a@" + "b" * 300 + ".com",
        "Me <me@acme.test>",  # an address, not a mailbox with a name
    ],
)
def test_a_test_to_an_address_no_visitor_could_have_is_refused_at_to(api, app, to):
    """`to` is checked as a visitor's address is where events come in."""
    answer = api.post(
        "/emails/test", json={"to": to, "visitor": ZOE, "email": {"subject": "s", "text": "t"}}
    )
    assert answer.status_code == 422, answer.text
    assert [p["loc"] for p in answer.json()["detail"]] == ["to"]
    assert count(app, test_emails) == 0


# -- deleting templates ------------------------------------------------------------------


def test_a_template_in_use_cannot_be_deleted_and_one_unused_can(api):
    put_template(api, NUDGE)
    api.put_flow(ONBOARDING)
    answer = api.delete("/templates/nudge")
    assert answer.status_code == 409
    assert answer.json()["used_by"] == [{"flow": "onboarding", "step": "nudge_email"}]
    assert "onboarding/nudge_email" in answer.json()["detail"]
    assert api.get("/templates/nudge").status_code == 200

    # Once the flow no longer names it, it goes; the flow's old version still loads.
    api.put_flow(ONBOARDING.replace("{template: nudge}", "{subject: s, text: t}"))
    assert api.delete("/templates/nudge").status_code == 204
    assert api.get("/templates/nudge").status_code == 404
    assert [t["key"] for t in api.get("/templates").json()] == []
    assert api.delete("/templates/nudge").status_code == 404
    assert api.get("/flows/onboarding").status_code == 200
    answer = api.put(  # no flow may name it any more
        "/flows/other",
        content=ONBOARDING.replace("onboarding", "other"),
        headers={"Content-Type": "application/yaml"},
    )
    assert answer.status_code == 422

    # Saving the key again continues its numbering.
    assert put_template(api, NUDGE).json()["version"] == 2
