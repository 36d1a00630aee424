"""Timelines told in sentences (sluice.narration): every kind the engine, the
dispatcher, the tracker and people's actions write, from entries made by running real
flows on the fake clock, so that a change in what is written shows here."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import pytest

from conftest import Driver
from delivery_servers import SmtpServer, WebhookServer, free_port
from sluice import narration, views
from sluice.records import FlowStatus
from sluice.service import Sluice
from sluice.settings import Settings


def lines(app: Sluice, session_id: int) -> list[narration.Line]:
    session = app.session(session_id)
    with app.db.read() as conn:
        entries = views.timeline_since(conn, session_id, 0)
        return narration.session_lines(conn, session, entries, app.clock.now())


def told(app: Sluice, session_id: int) -> list[str]:
    return [line.sentence.text() for line in lines(app, session_id)]


def deliver(app: Sluice, clock, *, rounds: int, every: timedelta) -> None:
    dispatcher = app.dispatcher(rng=random.Random(3))
    for _ in range(rounds):
        asyncio.run(dispatcher.run_once())
        clock.advance(every)


# -- a session's way through a flow ----------------------------------------------------


def test_the_onboarding_example_reads_as_sentences_and_its_step_rows_fold(driver, app):
    driver.apply_example("nudge.yaml", "onboarding.yaml")
    [sid] = driver.send("$signup", "ada@example.com", fields={"first_name": "Ada"}).sessions_started
    driver.advance(timedelta(days=6))
    [event] = app.visitor("ada@example.com")["events"]
    welcome_id, nudge_id = [m["id"] for m in app.messages(email="ada@example.com")][::-1]
    # Plain text: no markup; the email's link as its path. Waits that are over say so,
    # with no relative form.
    assert told(app, sid) == [
        f"Entered the flow “onboarding” (v1), started by $signup (event {event['id']})",
        "Put “Welcome, Ada!” to ada@example.com in the outbox, unsent: no SMTP server is set "
        f"up (/outbox?email=ada%40example.com&id={welcome_id})",
        "Waited until 2026-01-07 08:00:00 UTC",
        "The wait is over",
        'Went “else”: visitor.tags contains "activated" was false (visitor.tags = [])',
        "Put “Need a hand getting started, Ada?” to ada@example.com in the outbox, unsent: no "
        f"SMTP server is set up (/outbox?email=ada%40example.com&id={nudge_id})",
        "Waited for completed_setup, at most until 2026-01-10 08:00:00 UTC",
        "Stopped waiting: the event did not come in time",
        "Began step tell_crm (webhook)",  # its webhook is pending: nothing followed yet
    ]
    told_lines = lines(app, sid)
    timeline = app.session(sid)["timeline"]
    # No `step` row is a line of its own, yet every entry is in some line's raw data.
    assert [e for line in told_lines for e in line.entries] == timeline
    welcome = told_lines[1]
    assert (welcome.step, welcome.step_kind) == ("welcome", "email")
    assert [e["kind"] for e in welcome.entries] == ["step", "email_sent"]
    welcome_email = app.messages(email="ada@example.com")[-1]  # newest first
    assert welcome_email["payload"]["subject"] == "Welcome, Ada!"
    link = f'<a href="/outbox?email=ada%40example.com&amp;id={welcome_email["id"]}">view email</a>'
    assert link in str(welcome.sentence.html())
    assert welcome.text() == (
        "2026-01-05 08:00:00 UTC  welcome  " + welcome.sentence.text()
    )  # the CLI's line: time first


TOUR = """\
key: tour
trigger: {event: go}
entry: every_time
steps:
  - id: label
    tag: {add: [vip, '{{ event.details.t }}'], remove: [trial]}
  - id: plan
    field: {set: {plan: pro}, remove: [old]}
  - id: optout
    unsubscribe: true
  - id: hello
    email: {subject: 'Hello <b>you</b>', html: '<p>hi</p>'}
  - id: ab
    split:
      - {weight: 0, steps: [{id: a, tag: {add: [a]}}]}
      - {weight: 1, steps: [{id: b, track: {type: tried, details: {n: 3}}}]}
  - id: chain
    start_flow: other
  - id: chain_off
    start_flow: dormant
  - id: check
    if: 'visitor.plan == "pro"'
    then: [{id: back_in, subscribe: true}]
  - id: hold
    wait_for: {event: confirmed, timeout: 2d}
  - id: bye
    exit: {reason: done touring}
---
key: other
trigger: {event: never}
steps: [{id: noop, tag: {add: [other]}}]
---
key: dormant
trigger: {event: never}
steps: [{id: noop, tag: {add: [dormant]}}]
"""


def test_every_kind_of_step_reads_as_a_sentence(driver, app):
    driver.apply(TOUR)
    app.set_flow_status("dormant", FlowStatus.OFF)
    sent = driver.send("go", "tom@example.com", details={"t": "beta"})
    [sid] = sent.sessions_started
    [other] = [s["id"] for s in app.sessions(flow="other")]
    assert told(app, sid) == [
        f"Entered the flow “tour” (v1), started by go (event {sent.event_ids[0]})",
        "Tagged vip and beta",  # no `trial` to remove
        'Set plan to "pro"',  # no `old` to remove
        "Unsubscribed the visitor",
        "Did not send the email: the visitor is unsubscribed",
        "Took branch 2 of the split (weight 1)",
        "Recorded the event tried (n = 3)",
        f"Started the flow “other” (session #{other})",  # written last, told at its step
        "Did not start the flow “dormant”: flow is off",
        'Went “then”: visitor.plan == "pro" was true (visitor.plan = "pro")',
        "Subscribed the visitor",
        "Waiting for confirmed, at most until 2026-01-07 08:00:00 UTC (in 2 days)",
    ]
    driver.send("confirmed", "tom@example.com")
    assert told(app, sid)[-2:] == [
        "Received confirmed, the event it was waiting for",
        "Left the flow: done touring",
    ]
    links = " ".join(str(line.sentence.html()) for line in lines(app, sid))
    assert f'<a href="/sessions/{other}">session #{other}</a>' in links
    assert '<a href="/flows/dormant"><em>dormant</em></a>' in links
    assert [line.tone for line in lines(app, sid)].count("warning") == 2  # skipped, not started


def test_goals_waits_and_a_finished_session(driver, app):
    driver.apply(
        "key: shop\ntrigger: {event: go}\nexit: [{event: bought}]\nsteps:\n"
        "  - {id: nap, wait: 1h}\n  - {id: hold, wait: 3d}\n"
    )
    [sid] = driver.send("go", "gil@example.com").sessions_started
    driver.advance(timedelta(hours=2))
    driver.send("bought", "gil@example.com")
    assert told(app, sid)[1:] == [
        "Waited until 2026-01-05 09:00:00 UTC",
        "The wait is over",
        "Was waiting until 2026-01-08 09:00:00 UTC (then a goal was reached)",  # no "in 3 days"
        "Reached a goal: the event bought",
        "Left the flow: a goal was reached",
    ]
    driver.apply("key: short\ntrigger: {event: hi}\nsteps: [{id: only, tag: {add: [x]}}]\n")
    [done] = driver.send("hi", "hal@example.com").sessions_started
    assert told(app, done)[-1] == "Completed the flow"


def test_people_acting_on_a_session_and_a_flow(driver, app, clock):
    driver.apply(
        "key: slow\ntrigger: {event: go}\non_resume: extend\n"
        "steps:\n  - {id: settle, wait: 2d}\n  - {id: tick, tag: {add: [x]}}\n"
    )
    [sid] = driver.send("go", "ida@example.com").sessions_started
    app.stop_session(sid, actor="ui:admin")
    app.resume_session(sid, actor="cli")
    app.set_flow_status("slow", FlowStatus.OFF)
    clock.advance(timedelta(hours=5))
    app.set_flow_status("slow", FlowStatus.ON)
    driver.run()
    assert told(app, sid)[2:] == [
        "Stopped by ui:admin; it stays here until resumed",
        "Resumed by cli",
        "Paused: the flow was turned off",
        "Resumed: the flow was turned on",
        "The wait now ends at 2026-01-07 13:00:00 UTC (in 2 days) (the flow was off meanwhile)",
    ]


def test_a_promise_that_no_longer_holds_has_no_future_form(driver, app):
    driver.apply("key: rest\ntrigger: {event: go}\nsteps:\n  - {id: settle, wait: 2d}\n")
    [sid] = driver.send("go", "kai@example.com").sessions_started
    assert told(app, sid)[1] == "Waiting until 2026-01-07 08:00:00 UTC (in 2 days)"
    app.stop_session(sid, actor="cli")
    assert told(app, sid)[1:] == [
        "Was waiting until 2026-01-07 08:00:00 UTC (then stopped)",
        "Stopped by cli; it stays here until resumed",
    ]
    app.resume_session(sid, actor="cli")  # it waits again: the promise holds again
    assert told(app, sid)[1] == "Waiting until 2026-01-07 08:00:00 UTC (in 2 days)"


def test_tags_and_fields_changed_tell_only_what_changed(driver, app):
    driver.apply(
        "key: mark\ntrigger: {event: go}\nentry: every_time\nsteps:\n"
        "  - {id: t, tag: {add: [vip], remove: [cold]}}\n"
        "  - {id: f, field: {remove: [score]}}\n"
    )
    [first] = driver.send("go", "lea@example.com", fields={"score": 3}).sessions_started
    assert told(app, first)[1:3] == ["Tagged vip", "Removed the field score"]  # no `cold`
    [again] = driver.send("go", "lea@example.com").sessions_started
    assert told(app, again)[1:3] == ["Changed no tags: nothing to change", "Changed no fields"]
    assert app.session(again)["timeline"][2]["data"] == {"added": [], "removed": []}
    assert app.visitor("lea@example.com")["tags"] == ["vip"]


def test_an_edited_flow_a_failure_and_a_retry(driver, app):
    flow = "key: edit\ntrigger: {event: go}\nsteps:\n  - {id: settle, wait: 1d}\n"
    driver.apply(flow)
    [sid] = driver.send("go", "jo@example.com").sessions_started
    driver.apply(flow + "  - {id: mark, field: {set: {n: '{{ 1 | divided_by: 0 }}'}}}\n")
    driver.advance(timedelta(days=1))
    said = told(app, sid)
    assert said[2] == "Moved from v1 to v2 (step settle kept)"
    assert said[-1].startswith("Failed: ") and "can't divide by 0" in said[-1]
    assert lines(app, sid)[-1].tone == "error"
    app.retry_session(sid, actor="ui:admin")
    assert told(app, sid)[-1] == "Retried by ui:admin: the step that failed runs again"


def test_a_condition_that_cannot_be_evaluated_and_a_chain_too_deep(driver, app):
    driver.apply(
        "key: odd\ntrigger: {event: go}\nexit: [{event: stop, if: 'event.details.n > 1'}]\n"
        "steps: [{id: hold, wait: 1d}]\n"
    )
    [sid] = driver.send("go", "kim@example.com").sessions_started
    driver.send("stop", "kim@example.com", details={"n": "many"})
    [error] = [line for line in lines(app, sid) if line.kind == "condition_error"]
    assert error.sentence.text().startswith(
        "A condition could not be evaluated, so it counts as false: "
    )
    driver.apply(
        "key: ping\ntrigger: {event: ping}\nentry: every_time\n"
        "steps: [{id: again, track: {type: ping}}]\n"
    )
    driver.send("ping", "lee@example.com")
    deepest = app.sessions(email="lee@example.com", flow="ping", limit=100)[0]["id"]
    assert told(app, deepest)[-2] == (
        "Did not record the event ping: event chain depth limit (8) reached"
    )


# -- deliveries ------------------------------------------------------------------------


HOOK = """\
key: hook
trigger: {event: go}
steps:
  - id: call
    webhook: {url: '{{ event.details.url }}', retries: {attempts: 3, backoff: 30s}}
"""


@pytest.fixture
def hooks(database_url, clock):
    settings = Settings(
        database_url=database_url,
        signing_key="k",
        webhook_secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        webhook_allow_private=True,
    )
    app = Sluice(settings, clock)
    yield app
    app.close()


def test_webhooks_retried_delivered_and_given_up(hooks, clock):
    driver = Driver(hooks, clock)
    driver.apply(HOOK)
    with WebhookServer(clock) as server:
        server.answers = [503, 200]
        [ok] = driver.send("go", "mo@example.com", details={"url": server.url()}).sessions_started
        deliver(hooks, clock, rounds=120, every=timedelta(seconds=1))
    driver.run()
    host = "127.0.0.1"
    said = told(hooks, ok)
    assert said[1].startswith(f"Webhook to “{host}” failed: HTTP 503 Service Unavailable; ")
    assert "attempt 1 of 3, next at 2026-01-05 08:00:" in said[1]
    assert said[2:] == [
        f"Webhook to “{host}” delivered: HTTP 200 (attempt 2)",
        "Completed the flow",
    ]

    url = f"http://127.0.0.1:{free_port()}/hook"  # nobody listens
    [down] = driver.send("go", "ned@example.com", details={"url": url}).sessions_started
    deliver(hooks, clock, rounds=10, every=timedelta(minutes=1))
    driver.run()
    said = told(hooks, down)
    refused = f"cannot connect to 127.0.0.1:{url.split(':')[2].split('/')[0]}: Connection refused"
    assert said[-2] == f"Webhook to “{host}” gave up after 3 attempts: {refused}"
    assert said[-1] == f"Failed: webhook failed: {refused} (after 3 attempts)"
    assert f"failed: {refused}; attempt 1 of 3, next at " in said[1]


def test_emails_refused_given_up_sent_opened_and_clicked(database_url, clock):
    with SmtpServer(clock) as smtp:
        settings = Settings(
            database_url=database_url,
            signing_key="k",
            smtp_url=smtp.url,
            mail_from="Acme <hello@acme.test>",
        )
        app = Sluice(settings, clock)
        try:
            driver = Driver(app, clock)
            driver.apply(
                "key: mail\ntrigger: {event: go}\nsteps:\n"
                "  - {id: hi, email: {subject: 'Hi {{ visitor.email }}', html: '<p>x</p>'}}\n"
            )
            smtp.answers = ["451 4.3.0 Try again later", "550 5.1.1 No such mailbox"]
            [sid] = driver.send("go", "oz@example.com").sessions_started
            deliver(app, clock, rounds=3, every=timedelta(hours=1))
            driver.run()
            said = told(app, sid)
            [oz_email] = app.messages(email="oz@example.com")
            assert said[1].startswith(
                "Could not send “Hi oz@example.com” yet: 451 4.3.0 Try again later; "
                "attempt 1 of 8, next at "
            )
            assert said[2] == (
                "Gave up sending “Hi oz@example.com”: 550 5.1.1 No such mailbox "
                f"(after 2 attempts) (/outbox?email=oz%40example.com&id={oz_email['id']})"
            )
            [sent_id] = driver.send("go", "pat@example.com").sessions_started
            deliver(app, clock, rounds=1, every=timedelta(seconds=1))
            driver.run()
            [message] = app.messages(email="pat@example.com")
            app.record_engagement(message["idempotency_id"], "email_opened", {})
            app.record_engagement(
                message["idempotency_id"], "email_clicked", {"url": "https://acme.test/a"}
            )
            said = told(app, sent_id)
            view = f"(/outbox?email=pat%40example.com&id={message['id']})"
            assert said[1] == f"Sent “Hi pat@example.com” to pat@example.com {view}"
            assert said[-2:] == [
                f"The visitor opened “Hi pat@example.com” {view}",
                "The visitor clicked a link to https://acme.test/a in “Hi pat@example.com”",
            ]
            html = str(lines(app, sent_id)[1].sentence.html())
            assert f"/outbox?email=pat%40example.com&amp;id={message['id']}" in html
        finally:
            app.close()


# -- what is not a flow's doing ----------------------------------------------------------


def row(kind: str, data: dict, **extra) -> dict:
    return {
        "id": 1,
        "session_id": 1,
        "at": "2026-01-05T08:00:00+00:00",
        "step": None,
        "kind": kind,
        "data": data,
        **extra,
    }


def test_an_erased_visitor_an_unknown_kind_and_data_of_another_shape():
    facts = narration.Facts(now=None)
    say = lambda r: narration.sentence(r, facts).text()  # noqa: E731
    assert say(row("exited", {"reason": "erased"})) == "Left the flow: the visitor was erased"
    assert say(row("sparkled", {"level": 3, "by": "x"})) == 'Sparkled: level 3, by "x"'
    assert say(row("sparkled", {})) == "Sparkled"
    # A kind we know whose data is not what it writes still reads, never as JSON braces.
    assert say(row("migrated", {"to": 2})) == "Migrated: to 2"


def test_values_are_escaped_in_html_and_plain_in_text():
    hostile = '<script>alert("x")</script>'
    sentence = narration.sentence(
        row("email_sent", {"subject": hostile, "to": "a@b.c", "message_id": "<m>"}),
        narration.Facts(now=None),
    )
    assert hostile in sentence.text()
    html = str(sentence.html())
    assert "<script>" not in html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html


def test_a_step_row_shown_live_gives_way_to_the_line_that_folds_it():
    step = row("step", {"kind": "webhook"}, step="call", id=7)
    attempt = row("webhook_delivered", {"status": 200, "attempt": 1}, step="call", id=8)
    facts = narration.Facts(now=None)
    [alone] = narration.narrate([step], facts)
    assert (alone.id, alone.sentence.text()) == (7, "Began step call (webhook)")
    [line] = narration.narrate([attempt], facts, before=[step])
    assert (line.id, line.replaces) == (8, 7)
    assert [e["kind"] for e in line.entries] == ["step", "webhook_delivered"]
    assert line.sentence.text() == "Webhook delivered: HTTP 200"


def test_a_next_attempt_no_session_waits_for_is_not_promised():
    data = {"attempt": 1, "error": "HTTP 503", "next_attempt_at": "2026-01-05T08:11:00+00:00"}
    attempt = row("webhook_attempt_failed", data, step="call", id=8)
    facts = narration.Facts(now=narration._instant("2026-01-05T08:01:00+00:00"))
    [line] = narration.narrate([attempt], facts, statuses={1: "waiting"})
    assert line.sentence.text().endswith("next at 2026-01-05 08:11:00 UTC (in 10 min)")
    exited = row("exited", {"reason": "goal"}, id=9)
    for rows, statuses in (([attempt, exited], {}), ([attempt], {1: "exited"})):
        facts = narration.Facts(now=facts.now)
        told_now = narration.narrate(rows, facts, statuses=statuses)[0].sentence.text()
        assert told_now == "Webhook failed: HTTP 503; attempt 1"


def test_relative_times():
    now = narration._instant("2026-01-05T08:00:00+00:00")
    at = lambda **d: now + timedelta(**d)  # noqa: E731
    assert narration.relative(at(days=2), now) == "in 2 days"
    assert narration.relative(at(hours=-3, minutes=-5), now) == "3 h ago"
    assert narration.relative(at(minutes=1), now) == "in 1 min"
    assert narration.relative(at(seconds=-10), now) == "just now"
    assert narration.when(at(seconds=5)) == "2026-01-05 08:00:05 UTC"


def test_a_huge_value_is_cut_in_the_sentence_and_kept_whole_in_the_entry(driver, app):
    driver.apply(
        "key: big\ntrigger: {event: go}\nsteps:\n"
        "  - {id: f, field: {set: {note: '{{ event.details.v }}'}}}\n"
    )
    [sid] = driver.send("go", "big@example.com", details={"v": "Z" * 60_000}).sessions_started
    said = told(app, sid)
    assert max(len(s) for s in said) < 2 * narration.SHOWN, said
    assert any("Z" * (narration.SHOWN - 10) in s and "…" in s for s in said)
    [entry] = [e for e in app.session(sid)["timeline"] if e["kind"] == "fields_changed"]
    assert "Z" * 60_000 in str(entry["data"])  # the raw entry keeps it all
