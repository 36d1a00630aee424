"""Sessions walking through flows: every kind of step, entry rules and goals.

Each test runs on SQLite and on PostgreSQL, with the clock under the test's control."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from sluice.records import FlowStatus

SIMPLE = """
key: welcome
trigger: {event: $signup}
steps:
  - id: hello
    email: {subject: 'Hi {{ visitor.first_name | default: "there" }}', html: '<p>Welcome</p>'}
  - id: mark
    tag: {add: [welcomed, '{{ event.details.plan }}-plan']}
  - id: remember
    field: {set: {plan: '{{ event.details.plan }}', score: 3}}
"""


def test_a_signup_walks_the_visitor_through_every_step(driver):
    driver.apply(SIMPLE)
    result = driver.send(
        "$signup", "Ada@Example.com", details={"plan": "pro"}, fields={"first_name": "Ada"}
    )
    [session_id] = result.sessions_started
    session = driver.session(session_id)
    assert session["status"] == "completed"
    assert session["email"] == "Ada@Example.com"
    assert [e["kind"] for e in session["timeline"]] == [
        "entered",
        "step",
        "email_sent",
        "step",
        "tags_changed",
        "step",
        "fields_changed",
        "completed",
    ]
    sent = session["timeline"][2]["data"]
    assert sent["transport"] == "outbox" and sent["subject"] == "Hi Ada"
    visitor = driver.visitor("ada@example.com")
    assert visitor["tags"] == ["welcomed", "pro-plan"]
    assert visitor["fields"] == {"first_name": "Ada", "plan": "pro", "score": 3}


def test_entry_rules_decide_whether_a_matching_event_starts_a_session(driver):
    driver.apply(
        """
key: waits
trigger: {event: go}
entry: one_at_a_time
steps: [{id: pause, wait: 1d}]
---
key: once-only
trigger: {event: go}
entry: once
steps: [{id: pause, wait: 1h}]
---
key: every
trigger: {event: go}
entry: every_time
cooldown: 2h
steps: [{tag: {add: [x]}}]
"""
    )
    first = driver.send("go", "a@example.com").sessions_started
    assert len(first) == 3
    assert driver.send("go", "a@example.com").sessions_started == []  # all blocked
    driver.advance(timedelta(hours=3))
    # once-only finished but never again; every_time is past its cooldown; waits is still open
    again = driver.send("go", "a@example.com").sessions_started
    flows = {driver.session(s)["flow"] for s in again}
    assert flows == {"every"}
    driver.advance(timedelta(days=1))
    flows = {driver.session(s)["flow"] for s in driver.send("go", "a@example.com").sessions_started}
    assert flows == {"waits", "every"}


def test_trigger_condition_reads_the_event_and_the_visitor(driver):
    driver.apply_example("onboarding.yaml", "nudge.yaml")
    assert (
        driver.send("$signup", "big@example.com", details={"plan": "enterprise"}).sessions_started
        == []
    )
    assert (
        len(driver.send("$signup", "small@example.com", details={"plan": "pro"}).sessions_started)
        == 1
    )


def test_wait_ends_when_its_time_comes(driver, clock):
    driver.apply(
        "key: w\ntrigger: {event: go}\nsteps:\n  - {id: pause, wait: 2d}\n  - {id: after, tag: {add: [done]}}\n"
    )
    [sid] = driver.send("go", "w@example.com").sessions_started
    session = driver.session(sid)
    assert session["status"] == "waiting" and session["step"] == "pause"
    assert session["wake_at"] == (clock.now() + timedelta(days=2)).isoformat()
    driver.advance(timedelta(days=1, hours=23))
    assert driver.session(sid)["status"] == "waiting"
    driver.advance(timedelta(hours=1))
    assert driver.session(sid)["status"] == "completed"
    assert driver.kinds(sid)[-4:] == ["wait_ended", "step", "tags_changed", "completed"]


def test_time_of_day_waits_use_the_visitors_zone_across_dst(driver, clock):
    driver.apply(
        "key: morning\ntrigger: {event: go}\ntimezone: Europe/Berlin\n"
        "steps:\n  - {id: nine, wait: {at: '09:00', on: [mon]}}\n"
    )
    clock.set(datetime(2026, 3, 27, 12, 0, tzinfo=UTC))  # Friday; DST starts Sunday 29th
    [berlin] = driver.send("go", "b@example.com").sessions_started
    [ny] = driver.send(
        "go", "n@example.com", fields={"timezone": "America/New_York"}
    ).sessions_started
    assert driver.session(berlin)["wake_at"] == "2026-03-30T07:00:00+00:00"  # 09:00 CEST
    assert driver.session(ny)["wake_at"] == "2026-03-30T13:00:00+00:00"  # 09:00 EDT


def test_until_field_with_a_missing_date_ends_at_once_and_says_why(driver):
    driver.apply_example("trial-ending.yaml")
    [sid] = driver.send("trial_started", "t@example.com").sessions_started
    wait_entry = next(e for e in driver.session(sid)["timeline"] if e["kind"] == "wait_ended")
    assert "trial_ends_at" in wait_entry["data"]["reason"]


def test_until_field_waits_until_the_date_plus_offset(driver, clock):
    driver.apply_example("trial-ending.yaml")
    ends = clock.now() + timedelta(days=10)
    fields = {"trial_ends_at": ends.isoformat(), "plan": "paid"}
    [sid] = driver.send("trial_started", "t@example.com", fields=fields).sessions_started
    assert driver.session(sid)["wake_at"] == (ends - timedelta(days=3)).isoformat()
    driver.advance(timedelta(days=7))
    session = driver.session(sid)
    assert session["status"] == "exited"
    branch = next(e for e in session["timeline"] if e["kind"] == "branch")
    assert branch["data"]["result"] is False
    assert branch["data"]["values"] == {"visitor.plan": "paid"}


def test_until_field_at_the_end_of_the_calendar_plus_offset_ends_at_once(driver):
    driver.apply(
        "key: far\ntrigger: {event: go}\nsteps:\n"
        "  - id: hold\n    wait: {until_field: ends, offset: 3650d}\n"
        "  - id: after\n    tag: {add: [done]}\n"
    )
    fields = {"ends": "9999-12-31"}
    [sid] = driver.send("go", "far@example.com", fields=fields).sessions_started
    session = driver.session(sid)
    ended = next(e for e in session["timeline"] if e["kind"] == "wait_ended")
    assert ended["data"]["reason"] == "field 'ends' + offset is out of range: '9999-12-31'"
    assert session["status"] == "completed"
    assert driver.visitor("far@example.com")["tags"] == ["done"]


def test_wait_for_takes_the_then_branch_when_the_event_arrives(driver):
    driver.apply_example("abandoned-cart.yaml")
    [sid] = driver.send(
        "checkout_started", "c@example.com", details={"cart_id": "A"}
    ).sessions_started
    assert driver.session(sid)["waiting_for"] == "$purchase"
    driver.send("$purchase", "c@example.com", details={"cart_id": "B"})  # another cart
    assert driver.session(sid)["status"] == "waiting"
    driver.send("$purchase", "c@example.com", details={"cart_id": "A"})
    session = driver.session(sid)
    assert session["status"] == "exited"
    kinds = [e["kind"] for e in session["timeline"]]
    assert "event_received" in kinds and kinds[-1] == "exited"
    assert session["timeline"][-1]["data"]["reason"] == "purchased"
    assert driver.visitor("c@example.com")["tags"] == ["customer"]


def test_wait_for_times_out_and_the_flow_goes_on(driver):
    driver.apply_example("abandoned-cart.yaml")
    [sid] = driver.send(
        "checkout_started",
        "c@example.com",
        details={"cart_id": "A", "items": [{"name": "Mug", "quantity": 2}]},
    ).sessions_started
    driver.advance(timedelta(hours=4))
    session = driver.session(sid)
    assert "wait_timed_out" in [e["kind"] for e in session["timeline"]]
    assert session["step"] == "morning" and session["status"] == "waiting"
    assert driver.visitor("c@example.com")["tags"] == ["cart-abandoner"]
    driver.advance(timedelta(days=4))
    session = driver.session(sid)
    assert session["status"] == "completed"
    sent = [e for e in session["timeline"] if e["kind"] == "email_sent"]
    assert sent[0]["data"]["subject"] == "You left something behind"
    split = next(e for e in session["timeline"] if e["kind"] == "split")
    assert split["data"]["branch"] in (0, 1) and len(sent) == 1 + (split["data"]["branch"] == 0)


def test_an_event_accepted_before_the_wait_began_does_not_count(driver):
    driver.apply(
        "key: late\ntrigger: {event: go}\nsteps:\n  - {id: pause, wait: 1h}\n"
        "  - id: listen\n    wait_for: {event: ping, timeout: 1d}\n    then: [{tag: {add: [pinged]}}]\n"
    )
    [sid] = driver.send("go", "l@example.com").sessions_started
    driver.send("ping", "l@example.com")  # during the first wait
    driver.advance(timedelta(hours=2))
    assert driver.session(sid)["waiting_for"] == "ping"
    driver.send("ping", "l@example.com")
    assert driver.visitor("l@example.com")["tags"] == ["pinged"]


def test_a_goal_ends_the_session_and_counts_as_a_conversion(driver, app):
    driver.apply_example("onboarding.yaml", "nudge.yaml")
    [sid] = driver.send("$signup", "g@example.com", details={"plan": "pro"}).sessions_started
    driver.send("$purchase", "g@example.com", details={"unique": {"key": "order-1"}})
    session = driver.session(sid)
    assert session["status"] == "exited"
    assert [e["kind"] for e in session["timeline"]][-2:] == ["goal", "exited"]
    stats = app.flow_stats("onboarding")
    assert stats["goals"] == 1 and stats["conversion"] == 1.0


def test_unsubscribed_visitors_get_no_marketing_email(driver):
    driver.apply(SIMPLE)
    driver.send("$unsubscribe", "u@example.com")
    [sid] = driver.send("$signup", "u@example.com", details={"plan": "x"}).sessions_started
    skipped = next(e for e in driver.session(sid)["timeline"] if e["kind"] == "email_skipped")
    assert skipped["data"]["reason"] == "unsubscribed"


def test_dollar_events_change_the_visitor_before_flows_match(driver):
    driver.apply(
        "key: vip\ntrigger: {event: $tag, if: 'visitor.tags contains \"vip\"'}\nsteps: [{exit: true}]\n"
    )
    result = driver.send("$tag", "v@example.com", details={"tag": "vip"})
    assert len(result.sessions_started) == 1
    driver.send("$remove_tag", "v@example.com", details={"tag": "vip"})
    driver.send("$update_fields", "v@example.com", fields={"plan": "pro"})
    driver.send("$unsubscribe", "v@example.com")
    visitor = driver.visitor("v@example.com")
    assert visitor["tags"] == [] and visitor["fields"] == {"plan": "pro"}
    assert visitor["subscribed"] is False
    driver.send("$subscribe", "v@example.com", fields={"plan": "max"})
    visitor = driver.visitor("v@example.com")
    assert visitor["subscribed"] is True and visitor["fields"]["plan"] == "max"


def test_a_repeated_purchase_is_stored_once_and_triggers_nothing(driver):
    driver.apply(
        "key: buy\ntrigger: {event: $purchase}\nentry: every_time\nsteps: [{exit: true}]\n"
    )
    first = driver.send("$purchase", "p@example.com", details={"unique": {"key": "o-1"}})
    second = driver.send("$purchase", "p@example.com", details={"unique": {"key": "o-1"}})
    assert (first.accepted, len(first.sessions_started)) == (1, 1)
    assert (second.accepted, second.duplicates, second.sessions_started) == (0, 1, [])
    assert len(driver.visitor("p@example.com")["events"]) == 1


def test_split_draws_once_and_records_the_choice(driver):
    driver.apply(
        "key: ab\ntrigger: {event: go}\nentry: every_time\nsteps:\n  - id: pick\n    split:\n"
        "      - {weight: 1, steps: [{id: a, tag: {add: [a]}}]}\n"
        "      - {weight: 3, steps: [{id: b, tag: {add: [b]}}]}\n"
    )
    branches = []
    for n in range(40):
        [sid] = driver.send("go", f"s{n}@example.com").sessions_started
        entry = next(e for e in driver.session(sid)["timeline"] if e["kind"] == "split")
        branches.append(entry["data"]["branch"])
        assert driver.visitor(f"s{n}@example.com")["tags"] == [["a", "b"][entry["data"]["branch"]]]
    assert set(branches) == {0, 1}


def test_split_never_chooses_a_branch_of_weight_0(driver):
    driver.apply(
        "key: paused\ntrigger: {event: go}\nentry: every_time\nsteps:\n  - id: pick\n"
        "    split:\n"
        "      - {weight: 0, steps: [{id: a, tag: {add: [a]}}]}\n"
        "      - {weight: 1, steps: [{id: b, tag: {add: [b]}}]}\n"
        "      - {weight: 0, steps: [{id: c, tag: {add: [c]}}]}\n"
        "      - {weight: 2, steps: [{id: d, tag: {add: [d]}}]}\n"
        "      - {weight: 0, steps: [{id: e, tag: {add: [e]}}]}\n"
    )

    def draw(n: int) -> int:
        [sid] = driver.send("go", f"w{n}@example.com").sessions_started
        entry = next(e for e in driver.session(sid)["timeline"] if e["kind"] == "split")
        branch = entry["data"]["branch"]
        assert driver.visitor(f"w{n}@example.com")["tags"] == [["a", "b", "c", "d", "e"][branch]]
        return branch

    assert {draw(n) for n in range(60)} == {1, 3}  # both live variants ran, no paused one

    class Extremes(random.Random):
        """The lowest and the highest draws a generator can make, in turn."""

        def __init__(self):
            super().__init__()
            self.draws = iter([0.0, 1 - 2**-53] * 10)

        def random(self):
            return next(self.draws)

    driver.worker.rng = Extremes()
    assert [draw(n) for n in range(60, 64)] == [1, 3, 1, 3]


def test_track_records_an_event_that_starts_other_flows_up_to_the_depth_limit(driver):
    driver.apply(
        "key: ping\ntrigger: {event: ping}\nentry: every_time\n"
        "steps: [{track: {type: ping, details: {n: '{{ event.details.n | plus: 1 }}'}}}]\n"
    )
    driver.send("ping", "t@example.com", details={"n": 0})
    sessions = driver.app.sessions(email="t@example.com", limit=100)
    assert len(sessions) == 9  # the API event (depth 0) and eight caused by flows
    deepest = driver.session(sessions[0]["id"])
    skipped = next(e for e in deepest["timeline"] if e["kind"] == "track_skipped")
    assert "depth limit (8)" in skipped["data"]["reason"]


def test_start_flow_starts_another_flow_with_the_same_origin_event(driver):
    driver.apply(
        "key: first\ntrigger: {event: go}\nsteps: [{start_flow: second}]\n---\n"
        "key: second\ntrigger: {event: never}\nsteps: [{tag: {add: ['{{ event.details.via }}']}}]\n"
    )
    [sid] = driver.send("go", "f@example.com", details={"via": "first"}).sessions_started
    sessions = driver.app.sessions(email="f@example.com")
    second = next(s for s in sessions if s["flow"] == "second")
    assert second["origin_event"] == driver.session(sid)["origin_event"]
    assert driver.visitor("f@example.com")["tags"] == ["first"]
    started = next(e for e in driver.session(sid)["timeline"] if e["kind"] == "flow_started")
    assert started["data"] == {"flow": "second", "session_id": second["id"]}
    driver.app.set_flow_status("second", FlowStatus.OFF)
    [again] = driver.send("go", "g@example.com").sessions_started
    refused = next(e for e in driver.session(again)["timeline"] if e["kind"] == "flow_not_started")
    assert refused["data"] == {"flow": "second", "reason": "flow is off"}


def test_a_template_error_fails_the_session_visibly_and_retry_runs_the_step_again(driver, app):
    driver.apply(
        "key: boom\ntrigger: {event: go}\nsteps:\n"
        "  - {id: broken, tag: {add: ['{{ event.details.items | join: 5 | upcase }}{% for i in (1..100000) %}x{% endfor %}']}}\n"
    )
    [sid] = driver.send("go", "b@example.com").sessions_started
    session = driver.session(sid)
    assert session["status"] == "failed" and session["step"] == "broken"
    assert session["timeline"][-1]["kind"] == "failed"
    assert "loop iteration limit" in session["timeline"][-1]["data"]["error"]
    app.retry_session(sid)
    driver.run()
    kinds = driver.kinds(sid)
    assert kinds.count("step") == 2 and "retried" in kinds and kinds[-1] == "failed"


def test_a_failed_session_cannot_be_stopped_and_a_running_one_cannot_be_retried(driver, app):
    from sluice.store.sessions import InvalidSessionState

    driver.apply("key: w\ntrigger: {event: go}\nsteps: [{id: p, wait: 1d}]\n")
    [sid] = driver.send("go", "x@example.com").sessions_started
    with pytest.raises(InvalidSessionState):
        app.retry_session(sid)
    with pytest.raises(InvalidSessionState):
        app.resume_session(sid)
