"""Editing a flow with live sessions (SPEC §2.7), visitors' export and erasure."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from sluice.definitions.parse import load_documents
from sluice.records import FlowStatus
from sluice.store.schema import events, timeline, visitors

V1 = """
key: edit
trigger: {event: go}
steps:
  - {id: one, wait: 2d}
  - {id: two, wait: 1d}
  - {id: three, tag: {add: [three]}}
"""


def apply(app, text: str, **options):
    return app.apply([("edit.yaml", d) for d in load_documents(text, "edit.yaml")], **options)


def test_saving_an_unchanged_definition_makes_no_version(driver, app):
    driver.apply(V1)
    assert apply(app, V1).flows == {"edit": None}
    assert app.show_flow("edit")["versions"][-1]["version"] == 1


def test_a_session_keeps_its_step_id_and_recomputes_a_changed_wait(driver, app, clock):
    driver.apply(V1)
    [sid] = driver.send("go", "a@example.com").sessions_started
    started = clock.now()
    driver.advance(timedelta(hours=1))
    assert apply(app, V1.replace("wait: 2d", "wait: 3h")).flows == {"edit": 2}
    driver.run()
    session = driver.session(sid)
    assert session["flow_version"] == 2
    migrated = next(e for e in session["timeline"] if e["kind"] == "migrated")
    assert migrated["data"]["from"] == 1 and migrated["data"]["to"] == 2
    assert datetime.fromisoformat(session["wake_at"]) == started + timedelta(hours=3)


def test_a_removed_step_continues_at_the_next_one_that_still_exists(driver, app):
    driver.apply(V1)
    [sid] = driver.send("go", "b@example.com").sessions_started
    edited = V1.replace("  - {id: one, wait: 2d}\n", "").replace("id: two", "id: two_b")
    report = apply(app, edited, dry_run=True)
    assert report.blast_radius == {
        "edit": [{"step": "one", "sessions": 1, "continues_at": "three"}]
    }
    assert app.show_flow("edit")["version"] == 1  # the dry run saved nothing
    apply(app, edited)
    driver.run()
    session = driver.session(sid)
    assert session["status"] == "completed"
    assert driver.visitor("b@example.com")["tags"] == ["three"]


def test_a_session_whose_step_and_all_later_ones_are_gone_completes(driver, app):
    driver.apply(V1)
    [sid] = driver.send("go", "c@example.com").sessions_started
    driver.advance(timedelta(days=2, hours=1))
    assert driver.session(sid)["step"] == "two"
    apply(app, "key: edit\ntrigger: {event: go}\nsteps: [{id: zero, tag: {add: [z]}}]\n")
    driver.run()
    session = driver.session(sid)
    assert session["status"] == "completed"
    assert driver.visitor("c@example.com")["tags"] == []


def test_stop_change_and_turn_back_on(driver, app):
    driver.apply(V1)
    [sid] = driver.send("go", "d@example.com").sessions_started
    app.set_flow_status("edit", FlowStatus.OFF)
    apply(app, V1.replace("{id: three, tag: {add: [three]}}", "{id: three, tag: {add: [fixed]}}"))
    driver.advance(timedelta(days=4))
    app.set_flow_status("edit", FlowStatus.ON)
    driver.run()
    driver.advance(timedelta(days=1))
    assert driver.session(sid)["status"] == "completed"
    assert driver.visitor("d@example.com")["tags"] == ["fixed"]
    assert [c["action"] for c in app.flow_changes("edit")] == [
        "version",
        "on",
        "off",
        "version",
        "on",
    ]
    assert (
        "+  - {id: three" in app.flow_changes("edit")[3]["diff"]
        or "fixed" in app.flow_changes("edit")[3]["diff"]
    )


def test_export_contains_everything_and_erase_leaves_only_a_hash(driver, app):
    driver.apply_example("onboarding.yaml", "nudge.yaml")
    [sid] = driver.send(
        "$signup", "e@example.com", details={"plan": "pro"}, fields={"first_name": "Eve"}
    ).sessions_started
    export = app.export_visitor("e@example.com")
    assert export["fields"] == {"first_name": "Eve"}
    assert export["sessions"][0]["timeline"][0]["kind"] == "entered"
    assert export["messages"][0]["payload"]["subject"] == "Welcome, Eve!"
    result = app.erase_visitor("e@example.com")
    assert result == {"erased": True, "sessions_exited": 1}
    session = driver.session(sid)
    assert session["status"] == "exited" and session["email"] is None
    assert [e["data"] for e in session["timeline"]] == [{"reason": "erased"}]
    # the address comes back: it is never emailed again by accident
    [again] = driver.send("$signup", "E@example.com", details={"plan": "pro"}).sessions_started
    skipped = next(e for e in driver.session(again)["timeline"] if e["kind"] == "email_skipped")
    assert skipped["data"]["reason"] == "address erased"


def test_a_new_visitor_never_inherits_an_erased_visitors_sessions_or_entries(driver, app):
    """Ids of erased rows are never handed out again (on SQLite they would be, when the
    erased rows were the newest): the erased visitor's sessions stay, exited, and must
    not become a newcomer's history."""
    driver.apply(
        """
key: welcome
trigger: {event: signed_up}
entry: once
steps:
  - {id: hello, tag: {add: [welcomed]}}
"""
    )
    driver.send("signed_up", "old@example.com")
    driver.run()
    erased = largest_ids(app)
    app.erase_visitor("old@example.com")
    [sid] = driver.send("signed_up", "new@example.com").sessions_started
    driver.run()
    newcomer = driver.visitor("new@example.com")
    assert [s["id"] for s in newcomer["sessions"]] == [sid]
    assert newcomer["tags"] == ["welcomed"]
    assert all(new > old for new, old in zip(largest_ids(app), erased, strict=True))


def largest_ids(app) -> list[int]:
    with app.db.read() as conn:
        return [
            conn.execute(sa.select(sa.func.max(table.c.id))).scalar_one()
            for table in (visitors, events, timeline)
        ]
