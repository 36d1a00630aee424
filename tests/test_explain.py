"""Why didn't they get it? The trigger's refusals recorded at ingest, and the
explanation built from them and the sessions, by the library, the API and the CLI.

Each test runs on SQLite and on PostgreSQL, with the clock under the test's control."""

from __future__ import annotations

import asyncio
import json
import random
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

import test_cli
import test_ui_pages
from api_support import api_in_process
from conftest import Driver
from delivery_servers import WebhookServer
from sluice.explain import UnknownStep
from sluice.records import FlowStatus
from sluice.service import Sluice, VisitorNotFound
from sluice.settings import Settings
from sluice.store.flows import UnknownFlow
from sluice.store.schema import timeline, trigger_refusals

cli = test_cli.cli  # the `sluice` command, run as a user runs it
# The web UI in-process, with a logged-in client.
sluice, anonymous, browser = test_ui_pages.sluice, test_ui_pages.anonymous, test_ui_pages.browser

ONBOARDING = """
key: onboarding
entry: once
trigger: {event: signup}
exit:
  - event: purchase
steps:
  - id: settle
    wait: 2d
  - id: check
    if: 'visitor.tags contains "activated"'
    then:
      - id: thanks
        email: {subject: 'Thanks', html: '<p>Thanks</p>'}
    else:
      - id: nudge
        email: {subject: 'Need a hand?', html: '<p>Hi</p>'}
"""

BIG_SPENDERS = """
key: big
trigger:
  event: order
  if: 'event.details.amount > 100 and visitor.plan == "pro"'
steps:
  - id: hello
    email: {subject: 'Hi', html: '<p>Hi</p>'}
"""


def refusal_rows(app) -> list:
    with app.db.read() as conn:
        return conn.execute(sa.select(trigger_refusals)).all()


def test_a_visitor_refused_by_once_is_told_which_session_blocked_them(driver, app):
    driver.apply(ONBOARDING)
    [first] = driver.send("signup", "ada@example.com").sessions_started
    for _ in range(3):
        assert driver.send("signup", "ada@example.com").sessions_started == []
    answer = app.explain("ada@example.com", "onboarding")
    assert answer.verdict == "entry_rule"
    # told by what the blocking session is now: still waiting, not "already ran"
    assert f"they already entered once (session #{first}, waiting)" in answer.sentence
    assert "`once`" in answer.sentence and "refused 3 of their events" in answer.sentence
    assert {"label": f"Session #{first}", "href": f"/sessions/{first}"} in [
        link.__dict__ for link in answer.links
    ]
    assert answer.facts["refusal"]["data"] == {"rule": "once", "session": first}
    # bounded: one row per visitor and flow, however many events were refused
    assert len(refusal_rows(app)) == 1


def test_a_session_started_in_the_same_batch_is_the_one_that_blocked(driver, app):
    from sluice.store.ingest import IncomingEvent

    driver.apply(ONBOARDING)
    result = app.send([IncomingEvent(type="signup", email="b@example.com") for _ in range(2)])
    [started] = result.sessions_started
    answer = app.explain("b@example.com", "onboarding")
    assert answer.facts["refusal"]["data"] == {"rule": "once", "session": started}
    assert answer.facts["refusal"]["refusals"] == 1


@pytest.mark.parametrize(
    ("entry", "rule", "says"),
    [
        (
            "entry: one_at_a_time",
            "one_at_a_time",
            "allows one session at a time, and they are already in the flow (session #{}, waiting)",
        ),
        ("entry: every_time\ncooldown: 7d", "cooldown", "so soon after session #{}, waiting."),
    ],
)
def test_one_at_a_time_and_the_cooldown_name_the_session_too(driver, app, entry, rule, says):
    driver.apply(f"key: pace\n{entry}\ntrigger: {{event: go}}\nsteps: [{{wait: 2d}}]\n")
    [first] = driver.send("go", "p@example.com").sessions_started
    assert driver.send("go", "p@example.com").sessions_started == []
    answer = app.explain("p@example.com", "pace")
    assert answer.verdict == "entry_rule" and says.format(first) in answer.sentence
    assert answer.facts["refusal"]["data"] == {"rule": rule, "session": first}


def test_a_false_trigger_condition_is_explained_with_the_values_it_read(driver, app):
    driver.apply(BIG_SPENDERS)
    driver.send("order", "c@example.com", details={"amount": 40}, fields={"plan": "free"})
    answer = app.explain("c@example.com", "big")
    assert answer.verdict == "condition_false"
    assert answer.facts["refusal"]["data"]["values"] == {
        "event.details.amount": 40,
        "visitor.plan": "free",
    }
    assert '`event.details.amount > 100 and visitor.plan == "pro"` was false' in (answer.sentence)
    assert 'event.details.amount = 40, visitor.plan = "free"' in answer.sentence
    # a later event that passes gives them the flow, and the answer follows it
    driver.send("order", "c@example.com", details={"amount": 400}, fields={"plan": "pro"})
    received = app.explain("c@example.com", "big", "hello")
    assert received.verdict == "received" and "sent the email “Hi”" in received.sentence


def test_a_visitor_who_met_the_goal_before_the_step_exited_on_it(driver, app, clock):
    driver.apply(ONBOARDING)
    [sid] = driver.send("signup", "d@example.com").sessions_started
    driver.advance(timedelta(hours=5))
    driver.send("purchase", "d@example.com")
    answer = app.explain("d@example.com", "onboarding", "nudge")
    assert answer.verdict == "goal_exit"
    assert f"Session #{sid} exited on its goal before reaching the step" in answer.sentence
    assert "a purchase event came" in answer.sentence and "at step settle" in answer.sentence


def test_an_unsubscribed_visitor_is_told_the_email_was_skipped(driver, app):
    driver.apply(ONBOARDING)
    driver.send("$unsubscribe", "e@example.com")
    driver.send("signup", "e@example.com")
    driver.advance(timedelta(days=2))
    answer = app.explain("e@example.com", "onboarding", "nudge")
    assert answer.verdict == "email_skipped"
    assert "they were unsubscribed" in answer.sentence
    assert answer.facts["entry"]["data"] == {"reason": "unsubscribed"}


def test_a_visitor_still_waiting_is_told_until_when(driver, app, clock):
    driver.apply(ONBOARDING)
    [sid] = driver.send("signup", "f@example.com").sessions_started
    until = (clock.now() + timedelta(days=2)).strftime("%Y-%m-%d %H:%M:%S UTC")
    answer = app.explain("f@example.com", "onboarding", "thanks")
    assert answer.verdict == "waiting"
    assert answer.sentence == (
        f"Session #{sid} has not reached the step yet: it is at step settle, "
        f"waiting until {until} (in 2 days)."
    )


def test_the_branch_that_went_the_other_way_is_shown_with_its_values(driver, app):
    driver.apply(ONBOARDING)
    driver.send("signup", "g@example.com")
    driver.advance(timedelta(days=2))
    answer = app.explain("g@example.com", "onboarding", "thanks")
    assert answer.verdict == "branch_other_way"
    assert '`visitor.tags contains "activated"` was false (visitor.tags = [])' in (answer.sentence)
    assert app.explain("g@example.com", "onboarding", "nudge").verdict == "received"
    assert app.explain("g@example.com", "onboarding").verdict == "received"


def test_a_flow_that_was_off_when_the_event_came_says_so(driver, app):
    driver.apply(ONBOARDING, on=False)
    driver.send("signup", "h@example.com")
    answer = app.explain("h@example.com", "onboarding")
    assert answer.verdict == "flow_off"
    assert answer.sentence.endswith("started no session: the flow was off when it came.")
    # turned on later, the next event starts a session, and the answer follows it
    app.set_flow_status("onboarding", FlowStatus.ON)
    driver.send("signup", "h@example.com")
    assert app.explain("h@example.com", "onboarding").verdict == "waiting"


def test_a_visitor_without_a_trigger_event_was_never_triggered(driver, app):
    driver.apply(ONBOARDING)
    driver.send("pageview", "i@example.com")
    answer = app.explain("i@example.com", "onboarding")
    assert answer.verdict == "never_triggered"
    assert answer.sentence == "Never triggered: no signup event has come for this visitor."
    assert refusal_rows(app) == []


def test_a_stopped_session_waits_for_nothing_in_the_facts(driver, app):
    driver.apply(ONBOARDING)
    [sid] = driver.send("signup", "s@example.com").sessions_started
    app.stop_session(sid, actor="cli")
    answer = app.explain("s@example.com", "onboarding")
    assert answer.verdict == "stopped"
    assert answer.facts["session"]["wake_at"] is None
    assert answer.facts["session"]["status"] == "stopped"


def test_a_delivery_being_retried_is_told_failing_with_its_error_and_next_attempt(
    database_url, clock
):
    settings = Settings(database_url=database_url, signing_key="k", webhook_allow_private=True)
    app = Sluice(settings, clock)
    try:
        driver = Driver(app, clock)
        driver.apply(
            "key: crm\ntrigger: {event: go}\nsteps:\n"
            "  - {id: notify, webhook: {url: '{{ event.details.url }}'}}\n"
        )
        with WebhookServer(clock) as server:
            server.answers = [503]
            details = {"url": server.url()}
            [sid] = driver.send("go", "w@example.com", details=details).sessions_started
            asyncio.run(app.dispatcher(rng=random.Random(3)).run_once())
        for step in (None, "notify"):
            answer = app.explain("w@example.com", "crm", step)
            assert answer.verdict == "waiting"
            assert "its webhook to 127.0.0.1, which is failing: HTTP 503" in answer.sentence
            assert "(attempt 1 of 8); next attempt at " in answer.sentence
            assert re.search(
                r"next attempt at [0-9-]+ [0-9:]+ UTC \(in \d+ min\)\.$", answer.sentence
            )
            assert answer.facts["delivery"]["attempts"] == 1
        assert answer.sentence.startswith(f"Session #{sid} reached the step on ")
    finally:
        app.close()


def test_a_failed_session_says_why(driver, app):
    driver.apply(
        "key: boom\ntrigger: {event: go}\nsteps:\n"
        "  - {id: broken, tag: {add: ['{% for i in (1..100000) %}x{% endfor %}']}}\n"
        "  - {id: after, email: {subject: Hi, html: '<p>x</p>'}}\n"
    )
    [sid] = driver.send("go", "fail@example.com").sessions_started
    answer = app.explain("fail@example.com", "boom", "after")
    assert answer.verdict == "failed"
    assert answer.sentence.startswith(f"Session #{sid} failed at step broken on ")
    assert "loop iteration limit" in answer.sentence


def test_mistakes_name_what_is_unknown(driver, app):
    driver.apply(ONBOARDING)
    driver.send("signup", "j@example.com")
    with pytest.raises(VisitorNotFound):
        app.explain("nobody@example.com", "onboarding")
    with pytest.raises(UnknownFlow):
        app.explain("j@example.com", "nope")
    with pytest.raises(UnknownStep, match="flow 'onboarding' has no step 'nope'"):
        app.explain("j@example.com", "onboarding", "nope")


def test_refusals_are_exported_and_erased_with_the_visitor(driver, app):
    driver.apply(ONBOARDING)
    driver.send("signup", "k@example.com")
    driver.send("signup", "k@example.com")
    driver.send("signup", "other@example.com")
    driver.send("signup", "other@example.com")
    [exported] = app.export_visitor("k@example.com")["trigger_refusals"]
    assert exported["flow"] == "onboarding" and exported["reason"] == "entry_rule"
    assert len(refusal_rows(app)) == 2
    app.erase_visitor("k@example.com")
    assert len(refusal_rows(app)) == 1
    assert app.explain("other@example.com", "onboarding").verdict == "entry_rule"


def test_the_api_explains_and_rejects_what_is_unknown(driver, app):
    driver.apply(BIG_SPENDERS)
    driver.send("order", "l@example.com", details={"amount": 5})
    with api_in_process(app) as api:
        answer = api.get("/visitors/l@example.com/explain", params={"flow": "big"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["verdict"] == "condition_false" and body["email"] == "l@example.com"
        assert body["facts"]["refusal"]["data"]["values"]["event.details.amount"] == 5
        missing = api.get("/visitors/x@example.com/explain", params={"flow": "big"})
        assert missing.status_code == 404
        assert api.get("/visitors/l@example.com/explain", params={"flow": "x"}).status_code == 404
        bad = api.get("/visitors/l@example.com/explain", params={"flow": "big", "step": "x"})
        assert bad.status_code == 422
        assert bad.json() == {"detail": [{"loc": "step", "msg": "flow 'big' has no step 'x'"}]}
        schema = api.client.get("/api/openapi.json").json()
        assert "/api/visitors/{email}/explain" in schema["paths"]


def test_the_cli_explains_in_a_sentence_or_json_and_mistakes_are_one_line(cli, tmp_path):
    (tmp_path / "flows.yaml").write_text(ONBOARDING)
    cli("flows", "apply", "flows.yaml")
    cli("flows", "on", "onboarding")
    cli("send", "signup", "--email", "m@example.com")
    cli("send", "signup", "--email", "m@example.com")
    done = cli("visitors", "explain", "m@example.com", "--flow", "onboarding")
    first_line = done.stdout.splitlines()[0]
    assert first_line.startswith("entry_rule: Their latest signup event")
    assert "they already entered once (session #1, active)" in first_line
    assert "the entry rule once allows" in first_line  # plain text: no backticks
    assert "Session #1: sluice sessions show 1" in done.stdout
    as_json = json.loads(
        cli("visitors", "explain", "m@example.com", "--flow", "onboarding", "--json").stdout
    )
    assert as_json["verdict"] == "entry_rule" and as_json["facts"]["refusal"]["refusals"] == 1
    step = cli("visitors", "explain", "m@example.com", "--flow", "onboarding", "--step", "nudge")
    assert step.stdout.startswith("in_progress: Session #1 has not reached the step yet")
    for args, message in [
        (("--flow", "onboarding", "--step", "nope"), "error: flow 'onboarding' has no step 'nope'"),
        (("--flow", "nope"), "error: unknown flow 'nope' in "),
    ]:
        mistake = cli("visitors", "explain", "m@example.com", *args, expect=1)
        assert mistake.stderr.startswith(message) and len(mistake.stderr.splitlines()) == 1
    unknown = cli("visitors", "explain", "x@example.com", "--flow", "onboarding", expect=1)
    assert unknown.stderr.startswith("error: no visitor with email 'x@example.com'")


def test_the_step_picker_names_steps_without_ids_by_where_they_stand(sluice, clock, browser):
    Driver(sluice, clock).apply(
        "key: route\ntrigger: {event: go}\nsteps:\n  - {id: first, wait: 1d}\n"
        "  - if: 'visitor.plan == \"pro\"'\n    then:\n"
        "      - webhook: {url: 'https://crm.example.com/x', on_failure: [{tag: {add: [down]}}]}\n"
        "    else: [{exit: {}}]\n"
    )
    Driver(sluice, clock).send("go", "r@example.com")
    page = browser.get("/why-not", params={"email": "r@example.com", "flow": "route"}).text
    assert '<option value="first">first · wait 1d</option>' in page
    assert (
        '<option value="steps.1.then.0.webhook.on_failure.0">'
        "step 2 → then → step 1 → on failure → step 1 · tag: +down</option>"
    ) in page
    assert '<option value="steps.1.else.0">step 2 → else → step 1 · exit</option>' in page
    asked = {"email": "r@example.com", "flow": "route", "step": "steps.1.else.0"}
    assert browser.get("/why-not", params=asked).status_code == 200  # the value still works


def test_the_why_not_page_answers_and_says_what_is_unknown(sluice, clock, browser):
    Driver(sluice, clock).apply(BIG_SPENDERS.replace("key: big", "key: big\nname: <b>Big</b>"))
    Driver(sluice, clock).send("order", "n@example.com", details={"amount": 1})
    profile = browser.get("/visitors/n@example.com?tab=flows").text
    assert "&lt;b&gt;Big&lt;/b&gt;" in profile and "<b>Big</b>" not in profile
    assert 'href="/why-not?email=n%40example.com&amp;flow=big"' in profile
    page = browser.get("/why-not", params={"email": "n@example.com", "flow": "big"})
    assert page.status_code == 200 and 'data-verdict="condition_false"' in page.text
    assert "event.details.amount = 1" in page.text
    step = {"email": "n@example.com", "flow": "big", "step": "nope"}
    refused = browser.get("/why-not", params=step)
    assert refused.status_code == 422 and "flow &#39;big&#39; has no step &#39;nope&#39;" in (
        refused.text
    )
    nobody = browser.get("/why-not", params={"email": "x@example.com", "flow": "big"})
    assert nobody.status_code == 404 and "No visitor has the email x@example.com" in nobody.text
    no_flow = browser.get("/why-not", params={"email": "n@example.com", "flow": "nope"})
    assert no_flow.status_code == 404 and "There is no flow &#39;nope&#39;" in no_flow.text


def test_a_step_removed_since_is_explained_from_the_version_that_had_it(driver, app):
    driver.apply(ONBOARDING)
    driver.send("signup", "r@example.com")
    driver.apply(ONBOARDING.replace("id: settle\n    wait: 2d", "id: rest\n    wait: 2d"))
    answer = app.explain("r@example.com", "onboarding", "settle")  # only in version 1
    assert answer.verdict == "waiting" and answer.facts["step"]["version"] == 1
    with pytest.raises(UnknownStep, match="flow 'onboarding' has no step 'never'"):
        app.explain("r@example.com", "onboarding", "never")


def test_an_entry_of_an_unexpected_shape_does_not_break_the_answer(driver, app):
    """Entries are read as stored: one whose data is not an object (written by hand,
    or by an older version) is read as saying nothing, not as an error."""
    driver.apply(ONBOARDING)
    driver.send("signup", "s@example.com")
    driver.advance(timedelta(days=2))
    with app.db.write() as conn:
        conn.execute(
            sa.update(timeline)
            .where(timeline.c.kind.in_(["email_sent", "branch"]))
            .values(data=None)  # JSON null, as the reviewer stored it
        )
    answer = app.explain("s@example.com", "onboarding", "nudge")
    assert answer.verdict == "received"
