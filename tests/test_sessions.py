"""Sessions walking through flows: every kind of step, entry rules and goals.

Each test runs on SQLite and on PostgreSQL, with the clock under the test's control."""

from __future__ import annotations

import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from sluice.engine.work import MAX_CAUSED
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
    assert session["email"] == "Ada@example.com"  # the domain lower-cased, the rest kept
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


def test_a_timezone_in_another_case_is_used_and_one_that_is_no_zone_is_named(driver, clock):
    driver.apply(
        "key: morning\ntrigger: {event: go}\ntimezone: europe/berlin\n"
        "steps:\n  - {id: nine, wait: {at: '09:00'}}\n---\n"
        "key: plain\ntrigger: {event: went}\nsteps:\n  - {id: nine, wait: {at: '09:00'}}\n"
    )
    assert clock.now() == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    [ny] = driver.send(
        "go", "n@example.com", fields={"timezone": "america/NEW_york"}
    ).sessions_started
    [mars] = driver.send("go", "m@example.com", fields={"timezone": "Mars/Base"}).sessions_started
    [plain] = driver.send("went", "m@example.com").sessions_started

    def waiting(sid):
        session = driver.session(sid)
        return session["wake_at"], next(e for e in session["timeline"] if e["kind"] == "waiting")

    wake_at, entry = waiting(ny)
    assert wake_at == "2026-01-05T14:00:00+00:00"  # 09:00 EST
    assert entry["data"] == {"until": wake_at, "timezone": "America/New_York"}
    wake_at, entry = waiting(mars)
    assert wake_at == "2026-01-06T08:00:00+00:00"  # 09:00 CET; 08:00 UTC today has begun
    assert entry["data"]["timezone"] == "Europe/Berlin"
    assert entry["data"]["timezone_note"] == (
        "visitor timezone 'Mars/Base' is not a time zone; used Europe/Berlin (the flow's timezone)"
    )
    wake_at, entry = waiting(plain)
    assert wake_at == "2026-01-05T09:00:00+00:00"
    assert entry["data"]["timezone_note"] == (
        "visitor timezone 'Mars/Base' is not a time zone; used UTC (the server's default)"
    )


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
    assert ended["data"]["reason"] == "field 'ends' + offset is out of range: \"9999-12-31\""
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


def caused_by_flows(app, email: str, *sent) -> dict:
    """The visitor's events and sessions other than the events the test `sent` and the
    sessions they started, with every timeline entry of all sessions."""
    profile = app.export_visitor(email)
    events = {i for result in sent for i in result.event_ids}
    started = {i for result in sent for i in result.sessions_started}
    return {
        "events": [e for e in profile["events"] if e["id"] not in events],
        "sessions": [s for s in profile["sessions"] if s["id"] not in started],
        "all_sessions": profile["sessions"],
        "entries": [e for s in profile["sessions"] for e in s["timeline"]],
    }


def test_one_event_causes_at_most_the_budget_of_events_and_sessions_through_track(driver):
    """Three `track` steps of the flow's own trigger: 3 + 9 + 27 + … events and as
    many sessions, thousands within depth 8, but only the budget is spent."""
    driver.apply(
        "key: ping\ntrigger: {event: ping}\nentry: every_time\nsteps:\n"
        + "".join(f"  - {{id: t{n}, track: {{type: ping}}}}\n" for n in range(3))
    )
    began = time.monotonic()
    sent = driver.send("ping", "t@example.com")
    assert time.monotonic() - began < 60
    [origin] = sent.event_ids
    caused = caused_by_flows(driver.app, "t@example.com", sent)
    events, started = len(caused["events"]), len(caused["sessions"])
    assert events + started == MAX_CAUSED == 100
    assert {s["status"] for s in caused["all_sessions"]} == {"completed"}
    reason = f"budget of 100 events and sessions caused by event {origin} through flows reached"
    kinds = Counter(e["kind"] for e in caused["entries"])
    skipped = [e for e in caused["entries"] if e["kind"] == "track_skipped"]
    refused = [e for e in caused["entries"] if e["kind"] == "flow_not_started"]
    assert skipped and {e["data"]["reason"] for e in skipped + refused} == {reason}
    # every `track` step ran: it recorded its event or said the budget was spent
    assert kinds["event_tracked"] == events
    assert kinds["event_tracked"] + len(skipped) == 3 * (started + 1)
    # every recorded event started its session, or its session said why not
    assert started + len(refused) == events
    assert {e["step"] for e in refused} <= {"t0", "t1", "t2"}


def test_start_flow_chains_share_the_budget_of_their_origin_event(driver):
    driver.apply(
        "key: fan\ntrigger: {event: go}\nentry: every_time\n"
        "steps: [{start_flow: fan}, {start_flow: fan}, {start_flow: fan}]\n"
    )
    sent = driver.send("go", "f@example.com")
    [origin] = sent.event_ids
    caused = caused_by_flows(driver.app, "f@example.com", sent)
    assert len(caused["sessions"]) == 100 and caused["events"] == []
    refused = [e for e in caused["entries"] if e["kind"] == "flow_not_started"]
    assert refused and {e["data"]["reason"] for e in refused} == {
        f"budget of 100 events and sessions caused by event {origin} through flows reached"
    }
    assert {s["status"] for s in caused["all_sessions"]} == {"completed"}
    # the next event from outside has a budget of its own
    again = driver.send("go", "f@example.com")
    assert len(caused_by_flows(driver.app, "f@example.com", sent, again)["sessions"]) == 200


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


@pytest.mark.parametrize(
    ("step", "error"),
    [
        (
            "email: {subject: s, html: '<p>{{ (1..event.details.n) | reverse | first }}</p>'}",
            "steps[0]: Liquid error at 1:30: loop iteration limit reached: "
            "a range of 100000000 items (at most 10000)",
        ),
        (
            "webhook: {url: 'https://hooks.example/x', body: {all: '{{ (1..event.details.n) | join }}'}}",
            "steps[0]: Liquid error at 1:27: loop iteration limit reached",
        ),
        (
            "tag: {add: ['{% for i in (1..event.details.n) %}x{% endfor %}']}",
            "steps[0]: Liquid error at 1:4: loop iteration limit reached",
        ),
        (
            "email: {subject: '{{ event.details.word | replace: \"w\", event.details.pad }}', text: t}",
            "steps[0]: Liquid error at 1:25: output limit reached: replace would make "
            "1500000 characters (at most 1048576)",
        ),
        (
            "field: {set: {x: \"{% for i in (1..10000) %}{% assign s = s | append: 'xxxxxxxxxx' %}"
            '{% endfor %}"}}',
            "filter work limit reached",
        ),
    ],
)
def test_a_template_over_a_limit_fails_its_session_quickly_and_the_worker_goes_on(
    driver, step, error
):
    driver.apply(f"key: heavy\ntrigger: {{event: go}}\nsteps:\n  - {step}\n")
    driver.apply("key: light\ntrigger: {event: go}\nsteps:\n  - {tag: {add: [fine]}}\n")
    started = time.monotonic()
    result = driver.send(
        "go", "h@example.com", details={"n": 100_000_000, "word": "w" * 50_000, "pad": "x" * 30}
    )
    assert time.monotonic() - started < 3
    heavy, light = (driver.session(sid) for sid in sorted(result.sessions_started))
    assert heavy["status"] == "failed"
    assert error in heavy["timeline"][-1]["data"]["error"]
    assert light["status"] == "completed"
    assert driver.visitor("h@example.com")["tags"] == ["fine"]


@pytest.mark.parametrize(
    "step",
    [
        "field: {set: {x: '{{ \"a%00b\" | url_decode }}'}}",
        "tag: {add: ['{{ \"t%00\" | url_decode }}']}",
        "email: {subject: '{{ \"s%00\" | url_decode }}', text: t}",
        "email: {subject: s, html: '<p>{{ \"%00\" | url_decode }}</p>'}",
        "track: {type: 'e{{ \"%00\" | url_decode }}'}",
        "webhook: {url: 'https://hooks.example/x', body: {v: '{{ \"%00\" | url_decode }}'}}",
    ],
)
def test_a_step_whose_rendered_text_holds_a_nul_character_fails_and_changes_nothing(driver, step):
    driver.apply(
        f"key: nul\ntrigger: {{event: go}}\nsteps:\n  - {step}\n  - tag: {{add: [after]}}\n"
    )
    [sid] = driver.send("go", "n@example.com").sessions_started
    session = driver.session(sid)
    assert session["status"] == "failed"
    assert session["timeline"][-1]["data"]["error"] == (
        "steps[0]: the rendered text contains a NUL character"
    )
    visitor = driver.visitor("n@example.com")
    assert (visitor["tags"], visitor["fields"]) == ([], {})


def test_the_example_emails_render_data_as_text_and_their_own_html_as_html(driver):
    driver.apply_example("onboarding.yaml", "nudge.yaml", "abandoned-cart.yaml")
    driver.send("$signup", "o@example.com", fields={"first_name": "Ann & Bo"})
    [welcome] = driver.app.messages(email="o@example.com")
    assert welcome["payload"]["subject"] == "Welcome, Ann & Bo!"
    assert welcome["payload"]["html"] == (
        "<h1>Hi Ann &amp; Bo</h1>\n<p>Thanks for picking the free plan.</p>\n"
        '<p><a href="https://app.example.com/setup">Finish setting up</a></p>\n'
    )
    items = [{"name": "Tea <loose>", "quantity": 2}, {"name": "Mug", "quantity": 1}]
    url = "https://shop.example/checkout?cart=A&step=2"
    driver.send("checkout_started", "c@example.com", details={"items": items, "checkout_url": url})
    driver.advance(timedelta(days=4))
    reminder = next(
        m
        for m in driver.app.messages(email="c@example.com")
        if m["payload"]["subject"] == "You left something behind"
    )
    assert reminder["payload"]["html"] == (
        "<p>Your cart is waiting:</p>\n"
        "<ul><li>Tea &lt;loose&gt; × 2</li><li>Mug × 1</li></ul>\n"
        '<p><a href="https://shop.example/checkout?cart=A&amp;step=2">Complete your order</a></p>\n'
    )
    assert "Tea <loose> × 2" in reminder["payload"]["text"]
