"""What becomes of a pending delivery when its session stops, its flow is turned off,
or its session finishes meanwhile (docs/delivery.md "Sessions that stop or finish"),
on SQLite and PostgreSQL, with a real endpoint answering 500, a real SMTP server and
the real dispatcher on the fake clock."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from conftest import Driver, eventually
from delivery_servers import SmtpServer, WebhookServer
from sluice.narration import session_lines
from sluice.records import FlowStatus
from test_ui_failures import deliver, logged_in, make_app, outbox_problem

HOOK = """
key: crm
trigger: {event: go}
steps:
  - id: call
    webhook:
      url: '{{ event.details.url }}'
      retries: {attempts: 5, backoff: 1m}
  - {id: after, tag: {add: [synced]}}
"""
WELCOME = """
key: welcome
trigger: {event: signup}
exit: [{event: $purchase}]
steps:
  - id: greet
    email: {subject: 'Welcome aboard', html: '<p>Hi</p>'}
  - {id: later, wait: 1d}
"""


@pytest.fixture
def hooks(database_url, clock):
    app = make_app(database_url, clock)
    yield app
    app.close()


@pytest.fixture
def endpoint(clock):
    with WebhookServer(clock, answers=[500]) as server:  # then 200
        yield server


def retrying_webhook(app, clock, endpoint) -> tuple[Driver, int]:
    """A session whose webhook failed once and is due again a minute or two later."""
    driver = Driver(app, clock)
    driver.apply(HOOK)
    [sid] = driver.send("go", "v@example.com", details={"url": endpoint.url()}).sessions_started
    deliver(app)
    assert len(endpoint.requests) == 1
    return driver, sid


def attempts_over(app, clock, hours: int) -> None:
    for _ in range(hours):
        clock.advance(timedelta(hours=1))
        deliver(app)


def test_a_stopped_sessions_webhook_is_not_attempted_until_it_is_resumed(hooks, clock, endpoint):
    driver, sid = retrying_webhook(hooks, clock, endpoint)
    ui = logged_in(hooks)
    assert ui.get("/ui/flows/crm/live").json()["health"]["call"]["retrying"] == 1
    # what the Stop Flow button promises, on the session page and the profile
    promise = "Nothing more happens in it (no email or webhook is sent) until it is resumed."
    assert promise in ui.get(f"/sessions/{sid}").text
    assert promise in ui.get("/visitors/v@example.com?tab=flows").text
    hooks.stop_session(sid, actor="ui:admin")
    attempts_over(hooks, clock, 48)
    assert len(endpoint.requests) == 1  # nothing reached the endpoint while stopped
    assert ui.get("/ui/flows/crm/live").json()["health"].get("call", {}).get("retrying", 0) == 0
    assert driver.kinds(sid)[-1] == "stopped"

    hooks.resume_session(sid)
    deliver(hooks)
    driver.run()
    assert len(endpoint.requests) == 2  # attempted again at once, and answered 200
    assert driver.session(sid)["status"] == "completed"
    assert driver.visitor("v@example.com")["tags"] == ["synced"]


def test_an_attempt_in_flight_when_the_session_stops_finishes_and_its_retry_is_held(
    hooks, clock, endpoint
):
    driver, sid = retrying_webhook(hooks, clock, endpoint)
    endpoint.answers, endpoint.delay = [500], 0.5
    clock.advance(timedelta(minutes=5))

    def stop_mid_attempt():
        assert eventually(lambda: len(endpoint.requests) == 2)
        hooks.stop_session(sid)

    stopper = threading.Thread(target=stop_mid_attempt)
    stopper.start()
    deliver(hooks)  # the second attempt: in flight while the person stops the session
    stopper.join()
    assert driver.kinds(sid)[-2:] == ["stopped", "webhook_attempt_failed"]
    endpoint.delay = 0
    attempts_over(hooks, clock, 24)
    assert len(endpoint.requests) == 2  # its retry waits for the resume
    hooks.resume_session(sid)
    deliver(hooks)
    assert len(endpoint.requests) == 3


def test_a_paused_flows_webhook_is_not_attempted_until_the_flow_is_on(hooks, clock, endpoint):
    driver, sid = retrying_webhook(hooks, clock, endpoint)
    hooks.set_flow_status("crm", FlowStatus.OFF)
    attempts_over(hooks, clock, 48)
    assert len(endpoint.requests) == 1
    hooks.set_flow_status("crm", FlowStatus.ON)
    deliver(hooks)
    driver.run()
    assert len(endpoint.requests) == 2
    assert driver.session(sid)["status"] == "completed"


def test_resuming_a_session_of_a_flow_that_is_off_keeps_its_webhook_held(hooks, clock, endpoint):
    driver, sid = retrying_webhook(hooks, clock, endpoint)
    hooks.stop_session(sid)
    hooks.set_flow_status("crm", FlowStatus.OFF)
    hooks.resume_session(sid)
    attempts_over(hooks, clock, 5)
    assert len(endpoint.requests) == 1
    assert driver.session(sid)["paused"] is True
    hooks.set_flow_status("crm", FlowStatus.ON)
    deliver(hooks)
    assert len(endpoint.requests) == 2


def test_an_email_pending_when_the_goal_is_met_is_never_sent(database_url, clock):
    with SmtpServer(clock) as smtp:
        app = make_app(database_url, clock, smtp.url)
        try:
            smtp.answers = ["451 4.3.0 try again later"]
            driver = Driver(app, clock)
            driver.apply(WELCOME)
            [sid] = driver.send("signup", "buyer@example.com").sessions_started
            deliver(app)
            assert smtp.refused == 1 and app.messages()[0]["state"] == "pending"

            driver.send("$purchase", "buyer@example.com")
            driver.run()
            session = driver.session(sid)
            assert session["status"] == "exited"
            [message] = app.messages()
            assert message["state"] == "skipped" and message["next_attempt_at"] is None
            assert message["error"] == "the session exited (goal) before it was sent"

            attempts_over(app, clock, 48)
            assert smtp.received == []  # SMTP accepts mail now; this one never goes

            told = [
                line.sentence.text()
                for line in session_lines(
                    None,
                    session,
                    [(n, e) for n, e in enumerate(session["timeline"])],
                    None,
                )
            ]
            assert told[-2:] == [
                "Left the flow: a goal was reached",
                "Did not send the email: the session exited (goal) before it was sent",
            ]
        finally:
            app.close()


def test_the_outbox_says_a_stopped_sessions_email_is_held(database_url, clock):
    with SmtpServer(clock) as smtp:
        app = make_app(database_url, clock, smtp.url)
        try:
            smtp.answers = ["451 4.3.0 try again later"]
            driver = Driver(app, clock)
            driver.apply(WELCOME)
            [sid] = driver.send("signup", "paused@example.com").sessions_started
            deliver(app)
            app.stop_session(sid)
            [message] = app.messages()
            assert message["state"] == "pending" and message["next_attempt_at"] is None
            assert outbox_problem(logged_in(app)) == (
                "Held: its session is stopped or its flow is off. "
                "It is attempted again when resumed."
            )
            attempts_over(app, clock, 24)
            assert smtp.received == []
            app.resume_session(sid)
            deliver(app)
            assert [m.recipients for m in smtp.received] == [["paused@example.com"]]
        finally:
            app.close()
