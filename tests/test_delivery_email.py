"""Email over SMTP: the dispatcher sends what the engine rendered to a real SMTP server
(aiosmtpd on loopback), and the outcome moves the session on."""

from __future__ import annotations

import asyncio
import random
import re
from datetime import timedelta
from email.utils import getaddresses

import pytest

from conftest import Driver
from delivery_servers import (
    RawServer,
    SmtpServer,
    free_port,
    password_check,
    self_signed_certificate,
    server_tls,
)
from sluice import links
from sluice.definitions.parse import DefinitionError
from sluice.delivery.dispatcher import Dispatcher
from sluice.delivery.smtp import SmtpSender
from sluice.delivery.smtp import SmtpServer as SmtpDestination
from sluice.service import Sluice
from sluice.settings import Settings
from sluice.store.ingest import IncomingEvent

SIGNING_KEY = "test-signing-key"

WELCOME = """
key: welcome
trigger: {event: signed_up}
steps:
  - id: hello
    email:
      subject: 'Welcome, {{ visitor.first_name | default: "friend" }}!'
      html: >-
        <html><head><style>p.lead { color: #336699; }</style></head>
        <body><p class="lead">Thanks for joining.</p>
        <p><a href="https://example.com/start?a=1&amp;b=2">Get started</a>
        <a href="mailto:help@example.com">Write to us</a></p></body></html>
  - id: after
    tag: {add: [welcomed]}
"""


def deliver(dispatcher: Dispatcher) -> int:
    """One dispatch round (claim what is due, attempt it, record the outcomes), in an
    event loop of its own, as a test or a tool would run it."""
    return asyncio.run(dispatcher.run_once())


@pytest.fixture
def smtp(clock):
    with SmtpServer(clock) as server:
        yield server


def mail_app(database_url, clock, smtp_url: str, **settings) -> Sluice:
    return Sluice(
        Settings(
            database_url=database_url,
            signing_key=SIGNING_KEY,
            smtp_url=smtp_url,
            mail_from="Acme <hello@acme.test>",
            public_url="https://sluice.acme.test",
            **settings,
        ),
        clock,
    )


@pytest.fixture
def mailer(database_url, clock, smtp):
    app = mail_app(database_url, clock, smtp.url)
    yield app
    app.close()


@pytest.fixture
def driver(mailer, clock) -> Driver:
    return Driver(mailer, clock)


def dispatcher_for(app: Sluice, sender: SmtpSender | None = None) -> Dispatcher:
    senders = None if sender is None else [sender]
    return app.dispatcher(senders=senders, rng=random.Random(7))


def test_a_marketing_email_is_sent_with_its_parts_and_headers(driver, mailer, smtp):
    driver.apply(WELCOME)
    [sid] = driver.send(
        "signed_up", "ada@example.com", fields={"first_name": "Ada"}
    ).sessions_started
    assert driver.session(sid)["status"] == "waiting"  # for the delivery

    assert deliver(dispatcher_for(mailer)) == 1
    [mail] = smtp.received
    message = mail.message
    assert mail.recipients == ["ada@example.com"] and mail.sender == "hello@acme.test"
    assert message["Subject"] == "Welcome, Ada!"
    assert message["From"] == "Acme <hello@acme.test>"
    assert message["To"] == "ada@example.com"
    assert message["Message-ID"] == f"<{sid}.hello@acme.test>"
    visitor = driver.visitor("ada@example.com")
    unsubscribe = links.unsubscribe_url(
        "https://sluice.acme.test", SIGNING_KEY.encode(), visitor["uuid"]
    )
    assert message["List-Unsubscribe"] == f"<{unsubscribe}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Thanks for joining." in text  # generated from the HTML
    assert 'style="color: #336699' in html  # CSS inlined
    assert "<style>" not in html
    assert "https://sluice.acme.test/c/" in html  # links tracked …
    assert 'href="mailto:help@example.com"' in html  # … but not mailto:
    assert 'src="https://sluice.acme.test/o/' in html  # open pixel

    driver.run()
    session = driver.session(sid)
    assert session["status"] == "completed"
    sent = [e for e in session["timeline"] if e["kind"] == "email_sent"]
    assert [e["data"] for e in sent] == [
        {
            "transport": "smtp",
            "message_id": f"<{sid}.hello@acme.test>",
            "to": "ada@example.com",
            "subject": "Welcome, Ada!",
        }
    ]
    assert driver.visitor("ada@example.com")["tags"] == ["welcomed"]


def test_without_tracking_links_and_body_are_left_alone(driver, mailer, smtp):
    driver.apply(WELCOME.replace("      subject:", "      track: false\n      subject:"))
    driver.send("signed_up", "bo@example.com")
    deliver(dispatcher_for(mailer))
    html = smtp.received[0].message.get_body(("html",)).get_content()
    assert 'href="https://example.com/start?a=1&amp;b=2"' in html
    assert "/o/" not in html and "/c/" not in html


def test_a_transactional_email_has_no_unsubscribe_headers_and_reaches_the_unsubscribed(
    driver, mailer, smtp
):
    flow = """
key: receipt
trigger: {event: purchased}
steps:
  - email:
      transactional: true
      from: 'Billing <billing@acme.test>'
      reply_to: 'support@acme.test'
      subject: Your receipt
      text: Thanks for your order.
"""
    driver.apply(flow)
    driver.app.send([IncomingEvent(type="$unsubscribe", email="cy@example.com")])
    driver.send("purchased", "cy@example.com")
    deliver(dispatcher_for(mailer))
    [mail] = smtp.received
    assert mail.message["List-Unsubscribe"] is None
    assert mail.message["From"] == "Billing <billing@acme.test>"
    assert mail.message["Reply-To"] == "support@acme.test"
    assert mail.message.get_content_type() == "text/plain"
    assert mail.message.get_content().strip() == "Thanks for your order."


def test_marketing_email_to_a_visitor_who_unsubscribed_since_rendering_is_skipped(
    driver, mailer, smtp
):
    driver.apply(WELCOME)
    [sid] = driver.send("signed_up", "di@example.com").sessions_started
    driver.app.send([IncomingEvent(type="$unsubscribe", email="di@example.com")])
    deliver(dispatcher_for(mailer))
    assert smtp.received == []
    driver.run()
    session = driver.session(sid)
    assert session["status"] == "completed"  # the session goes on
    skipped = [e for e in session["timeline"] if e["kind"] == "email_skipped"]
    assert [e["data"] for e in skipped] == [{"reason": "unsubscribed"}]
    assert "email_sent" not in driver.kinds(sid)
    [message] = driver.app.export_visitor("di@example.com")["messages"]
    assert message["state"] == "skipped"


def test_a_temporary_refusal_is_retried_with_the_same_message_id(driver, mailer, smtp, clock):
    driver.apply(WELCOME)
    [sid] = driver.send("signed_up", "ed@example.com").sessions_started
    smtp.answers = ["451 4.3.0 Try again later", "421 4.7.0 Too busy"]
    dispatcher = dispatcher_for(mailer)
    assert deliver(dispatcher) == 1
    assert deliver(dispatcher) == 0  # not due yet
    for _ in range(2):
        clock.advance(timedelta(hours=1))  # beyond the first delays (11 and 22 minutes ±20 %)
        deliver(dispatcher)
    [mail] = smtp.received
    assert smtp.refused == 2
    assert mail.message["Message-ID"] == f"<{sid}.hello@acme.test>"
    driver.run()
    timeline = driver.session(sid)["timeline"]
    failures = [e["data"] for e in timeline if e["kind"] == "email_attempt_failed"]
    assert [f["error"] for f in failures] == ["451 4.3.0 Try again later", "421 4.7.0 Too busy"]
    assert [f["attempt"] for f in failures] == [1, 2]
    assert driver.kinds(sid)[-4:] == ["email_sent", "step", "tags_changed", "completed"]


def test_a_permanent_refusal_fails_the_email_but_not_the_session(driver, mailer, smtp):
    driver.apply(WELCOME)
    [sid] = driver.send("signed_up", "fi@example.com").sessions_started
    smtp.answers = ["550 5.1.1 No such mailbox"]
    deliver(dispatcher_for(mailer))
    driver.run()
    session = driver.session(sid)
    failed = [e["data"] for e in session["timeline"] if e["kind"] == "email_failed"]
    assert failed == [{"status": 550, "attempt": 1, "error": "550 5.1.1 No such mailbox"}]
    assert session["status"] == "completed"
    assert driver.visitor("fi@example.com")["tags"] == ["welcomed"]


def test_a_server_that_is_down_is_retried_until_the_attempts_run_out(database_url, clock):
    app = mail_app(database_url, clock, f"smtp://127.0.0.1:{free_port()}")  # nobody listens
    driver = Driver(app, clock)
    driver.apply(WELCOME)
    [sid] = driver.send("signed_up", "gu@example.com").sessions_started
    dispatcher = dispatcher_for(app)
    for _ in range(8):
        deliver(dispatcher)
        clock.advance(timedelta(days=1))
    driver.run()
    timeline = driver.session(sid)["timeline"]
    kinds = [e["kind"] for e in timeline]
    assert kinds.count("email_attempt_failed") == 7 and kinds.count("email_failed") == 1
    [failed] = [e["data"] for e in timeline if e["kind"] == "email_failed"]
    assert (
        failed["attempt"] == 8
        and f"127.0.0.1:{app.settings.smtp_url.rsplit(':', 1)[1]}" in failed["error"]
    )
    assert driver.session(sid)["status"] == "completed"
    app.close()


@pytest.mark.parametrize("fault", ["drop", "sleep 2"])
def test_a_connection_dropped_or_too_slow_is_retried(driver, mailer, smtp, clock, fault):
    driver.apply(WELCOME)
    [sid] = driver.send("signed_up", "ha@example.com").sessions_started
    smtp.answers = [fault]
    sender = SmtpSender(SmtpDestination.from_url(smtp.url), tracker=None, timeout=0.5)
    dispatcher = dispatcher_for(mailer, sender)
    deliver(dispatcher)
    assert driver.kinds(sid)[-1] == "email_attempt_failed"
    clock.advance(timedelta(hours=1))
    deliver(dispatcher)
    received = [m.message["Message-ID"] for m in smtp.received]
    assert received[-1] == f"<{sid}.hello@acme.test>"
    driver.run()
    assert driver.session(sid)["status"] == "completed"


def test_starttls_and_authentication(database_url, clock, tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    options = {
        "tls_context": server_tls(cert, key),
        "require_starttls": True,
        "auth_required": True,
        "authenticator": password_check("mailer", "s3cret/pass"),
    }
    with SmtpServer(clock, **options) as server:
        app = mail_app(database_url, clock, f"smtp://mailer:s3cret%2Fpass@127.0.0.1:{server.port}")
        driver = Driver(app, clock)
        driver.apply(WELCOME)
        driver.send("signed_up", "io@example.com")
        import ssl

        trust = ssl.create_default_context(cafile=str(cert))
        sender = SmtpSender(
            SmtpDestination.from_url(app.settings.smtp_url), tracker=None, tls_context=trust
        )
        deliver(dispatcher_for(app, sender))
        assert [m.recipients for m in server.received] == [["io@example.com"]]
        app.close()


def test_smtps_speaks_tls_from_the_start(database_url, clock, tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    with SmtpServer(clock, ssl_context=server_tls(cert, key)) as server:
        app = mail_app(database_url, clock, f"smtps://127.0.0.1:{server.port}")
        driver = Driver(app, clock)
        driver.apply(WELCOME)
        driver.send("signed_up", "jo@example.com")
        import ssl

        trust = ssl.create_default_context(cafile=str(cert))
        sender = SmtpSender(
            SmtpDestination.from_url(app.settings.smtp_url), tracker=None, tls_context=trust
        )
        deliver(dispatcher_for(app, sender))
        assert len(server.received) == 1
        app.close()


def test_smtp_urls():
    server = SmtpDestination.from_url("smtp://us%40er:p%3Ass@mail.example.com:2525")
    assert (server.host, server.port, server.username, server.password) == (
        "mail.example.com",
        2525,
        "us@er",
        "p:ss",
    )
    assert not server.implicit_tls
    assert SmtpDestination.from_url("smtps://mail.example.com").port == 465
    assert SmtpDestination.from_url("smtp://mail.example.com").port == 25
    with pytest.raises(ValueError, match="SLUICE_SMTP_URL"):
        SmtpDestination.from_url("http://mail.example.com")


def test_non_ascii_text_is_encoded_and_line_breaks_cannot_add_headers(driver, mailer, smtp):
    flow = """
key: intl
trigger: {event: signed_up}
steps:
  - email:
      from: 'Zoë Café <zoe@acme.test>'
      subject: "{{ event.details.subject }}"
      html: '<p>Grüße, {{ visitor.email }}</p>'
"""
    driver.apply(flow)
    driver.send(
        "signed_up", "ki@example.com", details={"subject": "Grüße\r\nBcc: evil@example.com"}
    )
    deliver(dispatcher_for(mailer))
    [mail] = smtp.received
    assert mail.recipients == ["ki@example.com"]
    assert mail.message["Subject"] == "Grüße Bcc: evil@example.com"
    assert mail.message["Bcc"] is None
    assert mail.message["From"] == "Zoë Café <zoe@acme.test>"
    assert "Grüße, ki@example.com" in mail.message.get_body(("html",)).get_content()
    assert "Grüße, ki@example.com" in mail.message.get_body(("plain",)).get_content()


def test_the_text_part_keeps_every_character_and_no_stray_spaces(driver, mailer, smtp):
    flow = """
key: intl
trigger: {event: signed_up}
steps:
  - email:
      subject: Hallo
      html: >-
        <p>Hi <b>Zo&euml;</b>, welcome to M&uuml;nchen &copy; 2026 &ndash; ab &#8364;5 (&#x20AC;5)!</p>
        <p><i>Gr&uuml;&szlig;e</i>. <em>Caf&eacute;</em>! <strong>Stra&szlig;e</strong>;
        <span>na&iuml;ve</span>: <a href="https://example.com/x">L&auml;den</a>,
        (<b>&laquo;Oui&raquo;</b>) &mdash; &ldquo;<i>ok</i>&rdquo;&hellip;</p>
"""
    driver.apply(flow)
    driver.send("signed_up", "ki@example.com")
    deliver(dispatcher_for(mailer))
    [mail] = smtp.received
    text = mail.message.get_body(("plain",)).get_content()
    assert text.splitlines() == [
        "Hi Zoë, welcome to München © 2026 – ab €5 (€5)!",
        "",
        "Grüße. Café! Straße; naïve: [Läden](https://example.com/x), («Oui») — “ok”…",
    ]


def test_display_names_with_commas_and_unicode_domains_are_sent_right(driver, mailer, smtp):
    flow = """
key: shop
trigger: {event: ordered}
steps:
  - email:
      from: 'Shop, Inc <news@shop.example>'
      reply_to: '"Help, Desk" <help@bücher.example>'
      to: '{{ visitor.name }} <{{ visitor.email }}>'
      subject: Your order
      text: Thanks
"""
    driver.apply(flow)
    driver.send("ordered", "anna@bücher.example", fields={"name": "Doe, Jr."})
    deliver(dispatcher_for(mailer))
    [mail] = smtp.received
    assert mail.recipients == ["anna@xn--bcher-kva.example"]  # RCPT TO, in IDNA form
    assert mail.sender == "news@shop.example"
    headers = {name: mail.message.get_all(name) for name in ("From", "To", "Reply-To")}
    assert getaddresses(headers["From"]) == [("Shop, Inc", "news@shop.example")]
    assert getaddresses(headers["To"]) == [("Doe, Jr.", "anna@xn--bcher-kva.example")]
    assert getaddresses(headers["Reply-To"]) == [("Help, Desk", "help@xn--bcher-kva.example")]


def test_an_address_with_a_line_break_fails_its_step_and_sends_nothing(driver, mailer, smtp):
    flow = """
key: inject
trigger: {event: signed_up}
steps:
  - {id: mail, email: {to: '{{ event.details.name }} <{{ visitor.email }}>', subject: Hi, text: Hi}}
"""
    driver.apply(flow)
    [sid] = driver.send(
        "signed_up", "li@example.com", details={"name": "Li\nBcc: evil@example.com"}
    ).sessions_started
    assert deliver(dispatcher_for(mailer)) == 0
    session = driver.session(sid)
    assert session["status"] == "failed"
    [failed] = [e["data"] for e in session["timeline"] if e["kind"] == "failed"]
    assert failed["error"] == (
        "steps[0].email.to: contains a line break: 'Li\\nBcc: evil@example.com <li@example.com>'"
    )
    assert smtp.received == []


def test_a_reply_to_or_from_that_renders_empty_is_left_out(driver, mailer, smtp):
    """A visitor without the field the address comes from still gets the email: no
    Reply-To, and the default sender (SLUICE_MAIL_FROM)."""
    flow = """
key: managed
trigger: {event: signed_up}
steps:
  - email:
      from: '{{ visitor.sender }}'
      reply_to: '{{ visitor.manager_email }}'
      subject: Hi
      text: Hi
"""
    driver.apply(flow)
    [sid] = driver.send("signed_up", "li@example.com").sessions_started
    assert deliver(dispatcher_for(mailer)) == 1
    [mail] = smtp.received
    assert mail.message.get_all("Reply-To") is None
    assert getaddresses(mail.message.get_all("From")) == [("Acme", "hello@acme.test")]
    assert mail.recipients == ["li@example.com"]
    driver.run()
    assert driver.session(sid)["status"] == "completed"


def test_a_to_that_renders_empty_fails_its_step_saying_so(driver, mailer, smtp):
    flow = """
key: nobody
trigger: {event: signed_up}
steps:
  - {id: mail, email: {to: '{{ visitor.assistant_email }}', subject: Hi, text: Hi}}
"""
    driver.apply(flow)
    [sid] = driver.send("signed_up", "li@example.com").sessions_started
    assert deliver(dispatcher_for(mailer)) == 0
    session = driver.session(sid)
    assert session["status"] == "failed"
    [failed] = [e["data"] for e in session["timeline"] if e["kind"] == "failed"]
    assert failed["error"] == "steps[0].email.to: no address given"
    assert smtp.received == []


def test_a_literal_address_that_can_never_be_sent_is_a_validation_problem(driver, mailer):
    flow = """
key: bad
trigger: {event: signed_up}
steps:
  - email: {subject: Hi, text: Hi, to: '{{ visitor.email }}'}
  - email: {from: 'Shop <news@shop.example', reply_to: 'a@b.example, c@d.example', subject: Hi, text: Hi}
  - email: {to: 'zoë@example.com', subject: Hi, text: Hi}
"""
    with pytest.raises(DefinitionError) as error:
        driver.apply(flow)
    assert [(p.loc, p.msg) for p in error.value.problems] == [
        ("steps[1].email.from", "not an email address: 'Shop <news@shop.example'"),
        ("steps[1].email.reply_to", "not an email address: 'a@b.example, c@d.example'"),
        (
            "steps[2].email.to",
            "'zoë@example.com': the part before @ must be ASCII (SMTPUTF8 is not used)",
        ),
    ]
    assert mailer.list_flows() == []


def test_a_bad_sending_address_is_refused_when_the_settings_are_read(database_url):
    with pytest.raises(ValueError, match="SLUICE_MAIL_FROM: contains a line break"):
        Settings.from_env(
            {"SLUICE_DATABASE_URL": database_url, "SLUICE_MAIL_FROM": "a@b\nBcc: c@d"}
        )


@pytest.mark.parametrize(
    "fault", ["unknown host", "refused", "hangup", "reset", "silent", "queue full", "not TLS"]
)
def test_an_smtp_connection_error_says_what_went_wrong(database_url, clock, smtp, fault):
    mode = {"queue full": "full", "reset": "abort"}.get(fault, fault)
    with RawServer(mode) as raw:
        where = f"127.0.0.1:{raw.port}"
        url = {
            "unknown host": "smtp://nothing.invalid:25",  # reserved: never resolves
            "refused": f"smtp://127.0.0.1:{free_port()}",
            "not TLS": smtp.url.replace("smtp:", "smtps:"),  # a plain server, spoken to in TLS
        }.get(fault, f"smtp://{where}")
        app = mail_app(database_url, clock, url)
        driver = Driver(app, clock)
        driver.apply(WELCOME)
        [sid] = driver.send("signed_up", "er@example.com").sessions_started
        server = SmtpDestination.from_url(url)
        deliver(dispatcher_for(app, SmtpSender(server, tracker=None, timeout=0.5)))
    [attempt] = [
        e["data"] for e in driver.session(sid)["timeline"] if e["kind"] == "email_attempt_failed"
    ]
    named = f"SMTP server {server.host}:{server.port}"
    assert (
        attempt["error"]
        == {
            "unknown host": f"{named}: could not resolve nothing.invalid",
            "refused": f"{named}: cannot connect to {server.host}:{server.port}: Connection refused",
            "hangup": f"{named}: closed the connection",
            "reset": f"{named}: lost the connection",
            "silent": f"{named}: sent no greeting within 0.5s",
            "queue full": f"{named}: timed out connecting to {where} within 0.5s",
            "not TLS": f"{named}: TLS with {server.host}:{server.port} failed: wrong version number",
        }[fault]
    )
    app.close()


def test_visitor_data_in_the_html_is_text_not_a_tracked_link(driver, mailer, smtp):
    driver.apply("""
key: hi
trigger: {event: signed_up}
steps:
  - email:
      subject: 'Hi {{ visitor.first_name }}'
      html: >-
        <p>Hi {{ visitor.first_name }},</p>
        <p>{{ event.details.banner | raw }}</p>
        <p><a href="{{ event.details.start }}">Start</a></p>
""")
    evil = '<a href="https://evil.example/win">Claim</a>'
    driver.send(
        "signed_up",
        "eve@example.com",
        fields={"first_name": evil},
        details={
            "banner": '<a href="https://shop.example/sale">Sale</a>',
            "start": "https://example.com/start?a=1&b=2",
        },
    )
    deliver(dispatcher_for(mailer))
    [mail] = smtp.received
    html = mail.message.get_body(("html",)).get_content()
    # Text in the HTML (the CSS inliner writes its quotes back unescaped, as text may).
    assert 'Hi &lt;a href="https://evil.example/win"&gt;Claim&lt;/a&gt;,' in html
    tracker = mailer.tracker()
    clicks = [tracker.read(token, "click")["u"] for token in re.findall(r"/c/([^\"&]+)", html)]
    assert clicks == ["https://shop.example/sale", "https://example.com/start?a=1&b=2"]
    assert mail.message["Subject"] == f"Hi {evil}"
    assert f"Hi {evil}," in mail.message.get_body(("plain",)).get_content()
