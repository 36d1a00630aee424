"""Failures in sight, on SQLite and PostgreSQL: a webhook step whose endpoint answers
500 or refuses the connection, an SMTP server that refuses a message and one that is
down, run on the fake clock with a real dispatcher. The canvas counts the deliveries
being retried and failed, the flows list shows each flow's health, the outbox says
why an email failed and when it is tried next; and conversion counts sessions that
met a goal, or says there is no goal. (The same in a real browser is in
test_ui_browser.py.)"""

from __future__ import annotations

import asyncio
import random
import re
from datetime import timedelta
from html import unescape

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from fastapi.testclient import TestClient

from conftest import Driver
from delivery_servers import SmtpServer, WebhookServer, free_port
from sluice.api.app import create_app
from sluice.cli import main
from sluice.service import Sluice
from sluice.settings import Settings
from sluice.stats import conversion, conversion_text
from sluice.store.schema import timeline
from test_ui_pages import PASSWORD, login

HOOK = """
key: crm
name: CRM sync
trigger: {event: go}
steps:
  - id: call
    webhook:
      url: '{{ event.details.url }}'
      retries: {attempts: 3, backoff: 1m}
  - {id: after, tag: {add: [synced]}}
"""
MAIL = """
key: hello
trigger: {event: hi}
steps:
  - id: greet
    email: {subject: 'Hello there', html: '<p>Hi</p>'}
"""
GOALS = """
key: trial
trigger: {event: start}
exit: [{event: bought}]
steps:
  - {id: wait, wait: 3d}
"""
NO_GOAL = """
key: plain
trigger: {event: start}
steps:
  - {id: wait, wait: 3d}
  - {id: leave, exit: {reason: done}}
"""


def make_app(database_url, clock, smtp_url: str | None = None) -> Sluice:
    settings = Settings(
        database_url=database_url,
        signing_key="test-signing-key",
        admin_password=PASSWORD,
        webhook_allow_private=True,
        smtp_url=smtp_url,
        mail_from="Acme <hello@acme.test>",
    )
    return Sluice(settings, clock)


@pytest.fixture
def hooks(database_url, clock):
    app = make_app(database_url, clock)
    yield app
    app.close()


def logged_in(app: Sluice) -> TestClient:
    client = TestClient(create_app(app), follow_redirects=False)
    login(client)
    return client


def deliver(app: Sluice) -> None:
    asyncio.run(app.dispatcher(rng=random.Random(3)).run_once())


@pytest.fixture
def failing_endpoint(clock):
    with WebhookServer(clock, answers=[500] * 50) as server:
        yield server


def test_retrying_and_failed_webhooks_show_on_the_canvas_and_the_flows_list(
    hooks, clock, failing_endpoint
):
    driver = Driver(hooks, clock)
    driver.apply(HOOK)
    refused = f"http://127.0.0.1:{free_port()}/hook"  # nobody listens there
    for n in range(3):
        driver.send("go", f"v{n}@example.com", details={"url": failing_endpoint.url()})
    driver.send("go", "v3@example.com", details={"url": refused})
    deliver(hooks)
    ui = logged_in(hooks)

    live = ui.get("/ui/flows/crm/live").json()
    assert live["health"] == {
        "call": {"retrying": 4, "failed": 0, "sessions_failed": 0, "failing": True}
    }
    assert live["stats"]["call"]["delivered"] == 0
    assert ui.get("/ui/flows/figures").json()["crm"]["health"] == {
        "failing_steps": 1,
        "failed_24h": 0,
    }
    [call] = [s for s in hooks.flow_stats("crm")["steps"] if s["step"] == "call"]
    assert (call["delivered"], call["retrying"], call["failed"]) == (0, 4, 0)  # API, CLI

    for _ in range(10):  # the other two attempts, a minute or two apart
        clock.advance(timedelta(minutes=1))
        deliver(hooks)
        driver.run()
    assert len(failing_endpoint.requests) == 3 * 3
    live = ui.get("/ui/flows/crm/live").json()
    assert live["health"] == {
        "call": {"retrying": 0, "failed": 4, "sessions_failed": 4, "failing": True}
    }
    assert live["counts"] == {"failed": 4}
    assert ui.get("/ui/flows/figures").json()["crm"]["health"] == {
        "failing_steps": 1,
        "failed_24h": 4,
    }

    clock.advance(timedelta(hours=25))  # the failures are a day old: counted, not failing
    live = ui.get("/ui/flows/crm/live").json()
    assert live["health"]["call"] == {
        "retrying": 0,
        "failed": 4,
        "sessions_failed": 0,
        "failing": False,
    }
    assert ui.get("/ui/flows/figures").json()["crm"]["health"] == {
        "failing_steps": 0,
        "failed_24h": 0,
    }


def test_the_flows_list_has_a_health_column_linking_to_the_flow(hooks):
    driver = Driver(hooks, hooks.clock)
    driver.apply(HOOK)
    page = logged_in(hooks).get("/").text
    assert re.search(r"<th[^>]*>Health</th>", page)
    row = re.search(r'<tr data-flow="crm">(.*?)</tr>', page, re.S).group(1)
    assert 'data-figure="health"' in row


def outbox_problem(client: TestClient) -> str:
    page = client.get("/outbox").text
    found = re.search(r"<p class=\"alert\" data-delivery-problem>(.*?)</p>", page, re.S)
    return unescape(found.group(1)) if found else ""


def test_the_outbox_says_why_an_email_was_refused(database_url, clock):
    with SmtpServer(clock) as smtp:
        app = make_app(database_url, clock, smtp.url)
        try:
            smtp.answers = ["550 5.1.1 No such mailbox here"]
            driver = Driver(app, clock)
            driver.apply(MAIL)
            driver.send("hi", "nobody@example.com")
            deliver(app)
            ui = logged_in(app)
            assert outbox_problem(ui) == (
                "Not sent: 550 5.1.1 No such mailbox here. It failed for good after 1 attempt."
            )
            [message] = app.messages()
            assert message["state"] == "failed"
            assert message["error"] == "550 5.1.1 No such mailbox here"
            assert ui.get("/ui/flows/hello/live").json()["health"]["greet"]["failed"] == 1
        finally:
            app.close()


def test_the_outbox_says_when_an_email_to_a_server_that_is_down_is_tried_next(database_url, clock):
    port = free_port()  # nobody listens
    app = make_app(database_url, clock, f"smtp://127.0.0.1:{port}")
    try:
        driver = Driver(app, clock)
        driver.apply(MAIL)
        driver.send("hi", "later@example.com")
        deliver(app)
        [message] = app.messages()
        assert message["state"] == "pending" and message["attempts"] == 1
        problem = outbox_problem(logged_in(app))
        assert problem.startswith(
            f"Attempt 1 failed: SMTP server 127.0.0.1:{port}: cannot connect to "
            f"127.0.0.1:{port}: Connection refused. "
        )
        next_at = message["next_attempt_at"][:16].replace("T", " ")
        assert f"Next attempt {next_at} UTC" in problem
        live = logged_in(app).get("/ui/flows/hello/live").json()
        assert live["health"]["greet"]["retrying"] == 1
    finally:
        app.close()


# -- conversion ------------------------------------------------------------------------


def test_a_flow_without_goals_says_no_goal_everywhere(hooks, database_url):
    driver = Driver(hooks, hooks.clock)
    driver.apply(NO_GOAL)
    driver.send("start", "a@example.com")
    driver.advance(timedelta(days=4))  # the exit step ends the session: not a conversion
    ui = logged_in(hooks)
    figures = ui.get("/ui/flows/figures").json()["plain"]
    assert figures["conversion_text"] == "no goal" and figures["conversion"] is None
    assert ui.get("/ui/flows/plain/live").json()["conversion_text"] == "no goal"
    stats = hooks.flow_stats("plain")
    assert stats["has_goals"] is False and stats["conversion"] == 0.0
    assert stats["converted"] == 0
    printed = CliRunner().invoke(
        main,
        ["flows", "stats", "plain"],
        env={"SLUICE_DATABASE_URL": database_url, "SLUICE_SIGNING_KEY": "k"},
    )
    assert printed.exit_code == 0, printed.output
    assert printed.output.splitlines()[0] == "plain v1: 1 session(s), no goal"


def test_conversion_counts_sessions_that_met_a_goal_once(hooks, database_url):
    driver = Driver(hooks, hooks.clock)
    driver.apply(GOALS)
    for n in range(3):
        driver.send("start", f"t{n}@example.com")
    driver.send("bought", "t0@example.com")
    [converted] = hooks.sessions(email="t0@example.com")
    # A second goal entry on the same session (as a timeline may hold, say from an
    # import) still makes one converted session.
    with hooks.db.write() as conn:
        conn.execute(
            timeline.insert().values(
                session_id=converted["id"],
                visitor_id=conn.execute(
                    sa.select(timeline.c.visitor_id).where(timeline.c.session_id == converted["id"])
                ).scalar(),
                at=hooks.clock.now(),
                step="wait",
                kind="goal",
                data={"event": "bought"},
            )
        )
    stats = hooks.flow_stats("trial")
    assert (stats["goals"], stats["converted"], stats["sessions"]) == (2, 1, 3)
    assert stats["conversion"] == 0.333
    ui = logged_in(hooks)
    figures = ui.get("/ui/flows/figures").json()["trial"]
    assert figures["converted"] == 1 and figures["conversion_text"] == "33.3 %"
    assert ui.get("/ui/flows/trial/live").json()["conversion_text"] == "33.3 %"
    printed = CliRunner().invoke(
        main,
        ["flows", "stats", "trial"],
        env={"SLUICE_DATABASE_URL": database_url, "SLUICE_SIGNING_KEY": "k"},
    )
    assert (
        printed.output.splitlines()[0] == "trial v1: 3 session(s), 1 converted, conversion 33.3 %"
    )


@pytest.mark.parametrize(
    ("converted", "sessions", "fraction", "text"),
    [
        (1, 3, 0.333, "33.3 %"),
        (2, 3, 0.667, "66.7 %"),
        (1, 16, 0.063, "6.3 %"),  # 6.25 %: half up
        (1, 2000, 0.001, "0.1 %"),  # 0.05 %: half up
        (0, 5, 0.0, "0.0 %"),
        (7, 7, 1.0, "100.0 %"),
    ],
)
def test_one_rounding_rule_for_the_rate_and_its_text(converted, sessions, fraction, text):
    assert conversion(converted, sessions) == fraction
    assert conversion_text(converted, sessions, True) == text


def test_a_flow_with_goals_and_no_sessions_yet_shows_a_dash():
    assert conversion_text(0, 0, True) == "—" and conversion(0, 0) == 0.0
    assert conversion_text(0, 0, False) == "no goal"
