"""The impact of an edit on live sessions (impact.py, SPEC §2.7): what the preview says
saving will do, and that the engine then does exactly that."""

from __future__ import annotations

import time
from datetime import timedelta

import sqlalchemy as sa

from sluice.definitions.parse import load_documents
from sluice.store.imports import Change
from sluice.store.schema import deliveries, sessions
from sluice.ui.editing import EXAMPLES

ONBOARDING = (EXAMPLES / "onboarding.yaml").read_text()


def start(driver, *emails: str) -> None:
    for email in emails:
        driver.send("$signup", email, details={"plan": "pro"})


def edited(text: str, old: str, new: str) -> dict:
    assert old in text
    return load_documents(text.replace(old, new), "edit.yaml")[0]


def nudges(app) -> int:
    with app.db.read() as conn:
        return conn.execute(
            sa.select(sa.func.count())
            .select_from(deliveries)
            .where(
                deliveries.c.kind == "email",
                deliveries.c.payload["subject"].as_string().like("Need a hand%"),
            )
        ).scalar()


def test_shortening_a_wait_says_who_wakes_at_once_and_what_they_send(driver):
    driver.apply_example("nudge.yaml", "onboarding.yaml")
    start(driver, "a@example.com", "b@example.com", "c@example.com", "d@example.com")
    driver.app.change_visitor(Change(command="unsubscribe", email="d@example.com"))
    driver.clock.advance(timedelta(hours=1))
    start(driver, "e@example.com", "f@example.com")
    driver.clock.advance(timedelta(hours=1))

    preview = driver.app.preview(edited(ONBOARDING, "wait: 2d", "wait: 90m"))
    assert preview["blast_radius"] == [{"step": "settle", "sessions": 6, "continues_at": "settle"}]
    impact = preview["impact"]
    (wait,) = impact["waits"]
    assert wait | {"then_sends": None} == {
        "step": "settle",
        "kind": "wait",
        "version": 1,
        "sessions": 6,
        "change": "changed",
        "old": "2d",
        "new": "1h30m",
        "wake_now": 4,
        "wake_later": 2,
        "earliest": "2026-01-05T10:30:00+00:00",
        "latest": "2026-01-05T10:30:00+00:00",
        "continues_at": "activated",
        "then_sends": None,
    }
    # The `if` goes either way, so the nudge is a "maybe"; d@ unsubscribed gets none.
    assert wait["then_sends"] == [
        {
            "step": "nudge",
            "kind": "email",
            "summary": "email from template nudge",
            "maybe": True,
            "sessions": 3,
        }
    ]
    assert impact["sends_at_once"] == {"sessions": 4, "emails": 3, "webhooks": 0}
    assert impact["warning"] == (
        "Saving wakes 4 sessions at once, which then send 3 emails and 0 webhooks right away."
    )
    assert impact["summary"] == [
        "6 sessions waiting at settle (2d → 1h30m): 4 wake at once and send email from "
        "template nudge (nudge: 3, maybe); 2 wake later, at 2026-01-05 10:30 UTC."
    ]
    assert (impact["moves"], impact["removed"], impact["branches"]) == ([], [], [])

    # Saving does what the preview said: 4 leave the wait at once, 3 nudges go out.
    driver.app.apply([("edit.yaml", edited(ONBOARDING, "wait: 2d", "wait: 90m"))])
    driver.run()
    assert nudges(driver.app) == 3
    at = {s["step"]: 0 for s in driver.app.sessions(flow="onboarding")}
    for s in driver.app.sessions(flow="onboarding"):
        at[s["step"]] += 1
    assert at == {"wait_setup": 4, "settle": 2}
    driver.clock.advance(timedelta(minutes=29))
    driver.run()
    assert nudges(driver.app) == 3
    driver.clock.advance(timedelta(minutes=1))
    driver.run()
    assert nudges(driver.app) == 5


def test_a_removed_wait_lets_its_sessions_go_on_at_once(driver):
    linear = """
key: remind
trigger: {event: go}
steps:
  - {id: hold, wait: 2d}
  - id: remind
    email: {subject: Reminder, text: Hi}
  - id: ping
    webhook: {url: 'https://hooks.example.com/x'}
  - {id: later, wait: 1d}
  - id: bye
    email: {subject: Bye, text: Bye}
"""
    driver.apply(linear)
    for email in ("a@example.com", "b@example.com"):
        driver.send("go", email)
    document = load_documents(linear, "f.yaml")[0]
    document["steps"] = document["steps"][1:]
    impact = driver.app.preview(document)["impact"]
    assert impact["moves"] == [{"step": "hold", "sessions": 2, "continues_at": "remind"}]
    assert impact["removed"] == [{"step": "hold", "kind": "wait", "sessions": 2}]
    (wait,) = impact["waits"]
    assert (wait["change"], wait["old"], wait["new"], wait["wake_now"]) == (
        "removed",
        "2d",
        None,
        2,
    )
    assert [(s["step"], s["maybe"], s["sessions"]) for s in wait["then_sends"]] == [
        ("remind", False, 2),
        ("ping", False, 2),
    ]
    assert impact["sends_at_once"] == {"sessions": 2, "emails": 2, "webhooks": 2}


def test_changed_branches_name_the_sessions_before_them(driver):
    driver.apply_example("nudge.yaml", "onboarding.yaml")
    start(driver, "a@example.com", "b@example.com")
    document = edited(
        ONBOARDING,
        """if: 'visitor.tags contains "activated"'""",
        """if: 'visitor.tags contains "active"'""",
    )
    document["steps"][2]["else"][1]["wait_for"]["timeout"] = "5d"
    impact = driver.app.preview(document)["impact"]
    assert impact["branches"] == [
        {
            "step": "activated",
            "kind": "if",
            "sessions": 2,
            "change": 'condition `visitor.tags contains "activated"` → '
            "`visitor.tags contains \"active\"`; 'else' steps changed",
        }
    ]
    assert impact["waits"] == []  # nobody waits at wait_setup yet
    assert impact["sends_at_once"] == {"sessions": 0, "emails": 0, "webhooks": 0}
    assert impact["warning"] is None


def test_a_shortened_wait_for_timeout_takes_the_timeout_branch(driver):
    driver.apply_example("nudge.yaml", "onboarding.yaml")
    start(driver, "a@example.com")
    driver.advance(timedelta(days=2, hours=1))
    impact = driver.app.preview(edited(ONBOARDING, "timeout: 3d", "timeout: 30m"))["impact"]
    (wait,) = impact["waits"]
    assert (wait["step"], wait["kind"], wait["old"], wait["new"]) == (
        "wait_setup",
        "wait_for",
        "completed_setup, timeout 3d",
        "completed_setup, timeout 30m",
    )
    assert wait["wake_now"] == 1 and wait["continues_at"] == "tell_crm"
    assert impact["sends_at_once"] == {"sessions": 1, "emails": 0, "webhooks": 1}


def test_time_of_day_and_field_waits_are_predicted_as_the_engine_computes_them(driver):
    flow = """
key: daily
timezone: Europe/Berlin
trigger: {event: go}
steps:
  - {id: hold, wait: 7d}
  - id: remind
    email: {subject: Reminder, text: Hi}
"""
    driver.apply(flow)
    driver.send("go", "berlin@example.com")  # 2026-01-05 08:00 UTC = 09:00 in Berlin
    driver.send("go", "tokyo@example.com", fields={"timezone": "Asia/Tokyo"})  # 17:00
    driver.clock.advance(timedelta(hours=2))  # 11:00 Berlin, 19:00 Tokyo
    # At 10:00: Berlin's 10:00 came since the wait began, Tokyo's not yet.
    impact = driver.app.preview(edited(flow, "wait: 7d", "wait: {at: '10:00'}"))["impact"]
    (wait,) = impact["waits"]
    assert (wait["wake_now"], wait["wake_later"]) == (1, 1)
    assert wait["earliest"] == "2026-01-06T01:00:00+00:00"  # 10:00 in Tokyo
    # until_field: a date passed, a date to come, and no date at all.
    driver.app.change_visitor(
        Change(command="add_field", email="tokyo@example.com", name="due", value="2026-02-01")
    )
    impact = driver.app.preview(edited(flow, "wait: 7d", "wait: {until_field: due, offset: -1d}"))[
        "impact"
    ]
    (wait,) = impact["waits"]
    assert (wait["wake_now"], wait["wake_later"], wait["earliest"]) == (
        1,
        1,
        "2026-01-31T00:00:00+00:00",
    )
    driver.app.apply(
        [("f.yaml", edited(flow, "wait: 7d", "wait: {until_field: due, offset: -1d}"))]
    )
    driver.run()
    waiting = {s["step"]: s for s in driver.app.sessions(flow="daily", status="waiting")}
    assert list(waiting) == ["hold"]


def test_an_until_field_that_is_no_date_is_counted_as_the_engine_treats_it(driver):
    """A field the engine cannot read as a date (the largest double, a word, a map)
    ends the wait at once there, so the preview counts it as waking now: on SQLite
    the largest double once made the preview a 500."""
    flow = """
key: due
trigger: {event: go}
steps:
  - {id: hold, wait: 7d}
  - id: remind
    email: {subject: Reminder, text: Hi}
"""
    driver.apply(flow)
    values = [1.7976931348623157e308, "soon", {"day": 1}, 1.5e9, "2040-03-01"]
    for n, value in enumerate(values):
        driver.send("go", f"v{n}@example.com", fields={"due": value})
    edit = edited(flow, "wait: 7d", "wait: {until_field: due, offset: -3650d}")
    (wait,) = driver.app.preview(edit)["impact"]["waits"]
    assert (wait["wake_now"], wait["wake_later"]) == (4, 1)
    driver.app.apply([("f.yaml", edit)])
    driver.run()
    assert [s["step"] for s in driver.app.sessions(flow="due", status="waiting")] == ["hold"]


def test_the_report_is_computed_in_sql_for_many_waiting_sessions(driver):
    driver.apply_example("nudge.yaml", "onboarding.yaml")
    start(driver, "seed@example.com")
    with driver.app.db.write() as conn:
        row = conn.execute(sa.select(sessions).where(sessions.c.step == "settle")).one()._asdict()
        del row["id"]
        began = driver.clock.now()
        conn.execute(
            sessions.insert(),
            [
                row
                | {
                    "state": {
                        "wait": {"began_at": (began - timedelta(minutes=i % 120)).isoformat()}
                    },
                    "wake_at": began + timedelta(days=2),
                }
                for i in range(20_000)
            ],
        )
    driver.clock.advance(timedelta(minutes=30))
    document = edited(ONBOARDING, "wait: 2d", "wait: 1h")
    started = time.perf_counter()
    impact = driver.app.preview(document)["impact"]
    elapsed = time.perf_counter() - started
    (wait,) = impact["waits"]
    assert wait["sessions"] == 20_001
    # The ones that began 30 minutes or more before the seed wake at once (1h has passed).
    assert wait["wake_now"] == sum(1 for i in range(20_000) if i % 120 >= 30)
    assert wait["wake_later"] == 20_001 - wait["wake_now"]
    assert elapsed < 1.0, f"the preview took {elapsed:.2f}s"
    print(f"preview of 20k waiting sessions: {elapsed * 1000:.0f} ms")


def test_the_api_preview_and_dry_run_give_the_same_report(app, driver):
    from api_support import api_in_process

    driver.apply_example("nudge.yaml", "onboarding.yaml")
    start(driver, "a@example.com", "b@example.com")
    driver.clock.advance(timedelta(hours=1))
    text = ONBOARDING.replace("wait: 2d", "wait: 1m")
    yaml = {"Content-Type": "application/yaml"}
    with api_in_process(app) as api:
        preview = api.post("/flows/onboarding/preview", content=text, headers=yaml).json()
        dry = api.post("/apply", params={"dry_run": "true"}, content=text, headers=yaml).json()
        invalid = api.post("/flows/onboarding/preview", json={"trigger": {}, "steps": []}).json()
    assert preview["impact"]["sends_at_once"] == {"sessions": 2, "emails": 2, "webhooks": 0}
    assert dry["impact"] == {"onboarding": preview["impact"]}
    assert invalid["impact"]["sends_at_once"]["sessions"] == 0
    assert app.show_flow("onboarding")["version"] == 1
