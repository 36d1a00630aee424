"""Triggers on data changes (SPEC §7 Triggers): `tag_added` and `field_changed` start a
flow whichever source made the change — a `$tag` event, an event's `fields`, Bento's
plain commands, a person on the profile, a flow's step — and an import starts none.
Each records its origin event in the visitor's history first; entry rules, flows that
are off, the trigger's `if` and the chain's depth limit apply as for events."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sluice.audience import Change, SubscriberImport
from sluice.definitions.parse import load_documents, validate_flow
from sluice.definitions.problems import DefinitionError
from sluice.edge import EventInput, InvalidInput
from sluice.engine import triggers
from sluice.engine.triggers import DataChange
from sluice.narration import session_lines
from sluice.records import FlowStatus
from sluice.store.ingest import IncomingEvent

VIP = """
key: vip
trigger: {tag_added: vip}
steps:
  - {id: settle, wait: 1d}
  - {id: welcomed, tag: {add: [vip-welcomed]}}
"""
PLAN = """
key: upgraded
entry: every_time
trigger:
  field_changed: {field: plan, to: pro}
  if: 'event.details.from != "enterprise"'
steps:
  - {id: thanks, field: {set: {thanked_from: '{{ origin.details.from }}'}}}
"""


def sessions_of(driver, email: str, flow: str) -> list[dict]:
    return [s for s in driver.visitor(email)["sessions"] if s["flow"] == flow]


def events_of(driver, email: str, event_type: str) -> list[dict]:
    return [e for e in driver.visitor(email)["events"] if e["type"] == event_type]


def test_a_tag_added_by_each_source_starts_the_flow_once_and_an_import_starts_nothing(driver, app):
    driver.apply(VIP)
    driver.apply("key: grant\ntrigger: {event: upgraded}\nsteps: [{id: grant, tag: {add: [vip]}}]")

    # An event that adds the tag, Bento's plain command, a person on the profile, a flow's step.
    driver.send("$tag", "event@example.com", details={"tag": "vip"})
    app.audience.run_commands(
        [(0, Change(command="add_tag", email="command@example.com", name="vip"))]
    )
    app.audience.create_subscriber("person@example.com")
    change = Change(command="add_tag", email="person@example.com", name="vip")
    assert len(app.change_visitor(change)) == 1  # the session it started
    driver.send("upgraded", "step@example.com")
    app.audience.import_subscribers([SubscriberImport(email="imported@example.com", tags=("vip",))])
    driver.run()

    for email in ("event", "command", "person", "step"):
        address = f"{email}@example.com"
        [session] = sessions_of(driver, address, "vip")
        assert session["status"] == "waiting", address
        [origin] = events_of(driver, address, "$tag_added")
        assert origin["details"] == {"tag": "vip"}
        assert driver.session(session["id"])["origin_event"]["id"] == origin["id"]
    imported = driver.visitor("imported@example.com")
    assert imported["tags"] == ["vip"]
    assert (imported["sessions"], imported["events"]) == ([], [])

    # Adding a tag they already have is no change; removing and adding it again is, and
    # the entry rule (one at a time) refuses it while the first session waits.
    driver.send("$tag", "event@example.com", details={"tag": "vip"})
    assert len(events_of(driver, "event@example.com", "$tag_added")) == 1
    driver.send("$remove_tag", "event@example.com", details={"tag": "vip"})
    driver.send("$tag", "event@example.com", details={"tag": "vip"})
    assert len(events_of(driver, "event@example.com", "$tag_added")) == 2
    assert len(sessions_of(driver, "event@example.com", "vip")) == 1
    [refusal] = app.export_visitor("event@example.com")["trigger_refusals"]
    assert (refusal["flow"], refusal["reason"]) == ("vip", "entry_rule")

    driver.advance(timedelta(days=1))
    assert "vip-welcomed" in driver.visitor("step@example.com")["tags"]


def test_a_field_changed_to_a_value_starts_the_flow_with_the_change_as_its_origin(driver):
    driver.apply(PLAN)

    driver.send("signed_up", "ada@example.com", fields={"plan": "free"})
    driver.send("upgraded", "ada@example.com", fields={"plan": "pro"})
    driver.send("seen", "ada@example.com", fields={"plan": "pro"})  # the same value: no change
    driver.send("downgraded", "bob@example.com", fields={"plan": "enterprise"})
    driver.send("downgraded", "bob@example.com", fields={"plan": "pro"})  # the `if` says no

    [session] = sessions_of(driver, "ada@example.com", "upgraded")
    assert session["status"] == "completed"
    [origin] = events_of(driver, "ada@example.com", "$field_changed")
    assert origin["details"] == {"field": "plan", "from": "free", "to": "pro"}
    assert driver.visitor("ada@example.com")["fields"]["thanked_from"] == "free"
    assert sessions_of(driver, "bob@example.com", "upgraded") == []
    # Bob's first change, to "enterprise", is not one the trigger names: no event for it.
    assert [e["details"]["to"] for e in events_of(driver, "bob@example.com", "$field_changed")] == [
        "pro"
    ]


def test_a_flow_that_is_off_records_that_it_refused_the_change(driver, app):
    driver.apply(VIP, on=False)
    driver.send("$tag", "ada@example.com", details={"tag": "vip"})
    assert sessions_of(driver, "ada@example.com", "vip") == []
    [refusal] = app.export_visitor("ada@example.com")["trigger_refusals"]
    assert (refusal["flow"], refusal["reason"], refusal["event"]["type"]) == (
        "vip",
        "flow_off",
        "$tag_added",
    )


def test_a_flow_whose_step_re_adds_its_own_trigger_tag_stops_at_the_depth_limit(driver):
    driver.apply(
        """
key: echo
entry: every_time
trigger: {tag_added: ping}
steps:
  - {id: unping, tag: {remove: [ping]}}
  - {id: ping, tag: {add: [ping]}}
"""
    )
    driver.send("$tag", "loop@example.com", details={"tag": "ping"})
    for _ in range(12):
        driver.run()

    echoes = sorted(sessions_of(driver, "loop@example.com", "echo"), key=lambda s: s["id"])
    assert len(echoes) == 9  # the outside change, then eight more, one level deeper each
    assert all(s["status"] == "completed" for s in echoes)
    last = driver.session(echoes[-1]["id"])
    [refused] = [e for e in last["timeline"] if e["kind"] == "flow_not_started"]
    assert refused["step"] == "ping"
    assert refused["data"] == {"flow": "echo", "reason": "flow chain depth limit (8) reached"}


def test_sluices_own_origin_events_cannot_be_sent_or_tracked(driver):
    with pytest.raises(InvalidInput) as refused:
        EventInput.checked({"type": "$tag_added", "email": "a@example.com"}, source="api")
    assert refused.value.problems[0]["loc"] == "type"
    assert "add a tag with $tag" in refused.value.problems[0]["msg"]

    driver.apply("key: fake\ntrigger: {event: go}\nsteps: [{id: t, track: {type: $tag_added}}]")
    [session] = driver.send("go", "ada@example.com").sessions_started
    failed = driver.session(session)
    assert failed["status"] == "failed"
    assert failed["timeline"][-1]["data"]["error"] == (
        "steps[0].track.type: $tag_added is recorded by Sluice, never tracked"
    )


def test_an_event_trigger_of_tag_added_names_any_tag_added(driver):
    driver.apply("key: any\nentry: every_time\ntrigger: {event: $tag_added}\nsteps: [{exit: true}]")
    driver.send("$tag", "ada@example.com", details={"tag": "a"})
    driver.send("$tag", "ada@example.com", details={"tag": "b"})
    origins = [
        driver.session(s["id"])["origin_event"]["details"]
        for s in sessions_of(driver, "ada@example.com", "any")
    ]
    assert sorted(o["tag"] for o in origins) == ["a", "b"]


def test_a_trigger_if_sees_the_visitor_as_its_own_change_left_them(driver, app):
    driver.apply(
        """
key: became
entry: every_time
trigger:
  field_changed: plan
  if: 'visitor.plan == event.details.to and visitor.tags contains "seen"'
steps: [{exit: true}]
"""
    )
    driver.send("$tag", "ada@example.com", details={"tag": "seen"})
    # One batch: two changes of the same field, each judged as it left the visitor.
    app.send(
        [
            IncomingEvent(type="a", email="ada@example.com", fields={"plan": "pro"}),
            IncomingEvent(type="b", email="ada@example.com", fields={"plan": "free"}),
        ]
    )
    driver.run()
    started = sessions_of(driver, "ada@example.com", "became")
    tos = sorted(driver.session(s["id"])["origin_event"]["details"]["to"] for s in started)
    assert tos == ["free", "pro"]


def test_a_field_change_is_judged_as_json_values(driver):
    driver.apply(
        "key: flagged\nentry: every_time\ntrigger: {field_changed: {field: flag, to: true}}\n"
        "steps: [{exit: true}]"
    )
    driver.send("a", "ada@example.com", fields={"flag": 1})
    driver.send("b", "ada@example.com", fields={"flag": True})  # 1 to true is a change
    driver.send("c", "ada@example.com", fields={"gone": None})  # null on a new field is not
    visitor = driver.visitor("ada@example.com")
    assert visitor["fields"] == {"flag": True, "gone": None}
    assert len(sessions_of(driver, "ada@example.com", "flagged")) == 1
    changed = [e["details"] for e in events_of(driver, "ada@example.com", "$field_changed")]
    assert changed == [{"field": "flag", "from": 1, "to": True}]


@pytest.mark.parametrize(
    ("trigger", "message"),
    [
        (
            {"if": "true"},
            "trigger.event: missing required key 'event' (or tag_added, field_changed, segment, date, webhook)",
        ),
        ({"event": "go", "tag_added": "vip"}, "trigger: expected only one of event, tag_added"),
        ({"tag_added": " "}, "trigger.tag_added: expected a non-empty string"),
        ({"field_changed": {"to": 1}}, "trigger.field_changed.field: missing required key"),
        ({"field_changed": {"field": "plan", "from": 1}}, "trigger.field_changed.from: unknown"),
    ],
)
def test_a_trigger_names_exactly_one_kind_of_change(trigger, message):
    with pytest.raises(DefinitionError) as invalid:
        validate_flow({"key": "x", "trigger": trigger, "steps": [{"exit": True}]})
    assert message in str(invalid.value)


# -- the pure decisions, without a database -------------------------------------------


def trigger_of(text: str):
    [doc] = load_documents(f"key: x\ntrigger: {text}\nsteps: [{{exit: true}}]\n")
    return validate_flow(doc).trigger


def test_only_changes_that_a_trigger_names_get_an_origin_event():
    named = [trigger_of("{tag_added: vip}"), trigger_of("{field_changed: {field: n, to: [1]}}")]
    changes = [
        ("a", DataChange("tag_added", "vip")),
        ("b", DataChange("tag_added", "other")),
        ("c", DataChange("field_changed", "n", 0, [1.0])),  # 1.0 is the JSON number 1
        ("d", DataChange("field_changed", "n", 0, [True])),  # true is not
        ("e", DataChange("field_changed", "m", 0, [1])),
    ]
    assert [key for key, _ in triggers.named_changes(changes, named)] == ["a", "c"]
    assert changes[2][1].origin == ("$field_changed", {"field": "n", "from": 0, "to": [1.0]})
    assert triggers.named_changes(changes, [trigger_of("{event: go}")]) == []


def test_a_trigger_is_described_in_words():
    assert trigger_of("{tag_added: vip}").describe() == "tag vip added"
    assert trigger_of("{field_changed: plan}").describe() == "field plan changed"
    assert (
        trigger_of("{field_changed: {field: plan, to: pro}}").describe()
        == 'field plan changed to "pro"'
    )
    assert trigger_of("{event: [a, b]}").describe() == "a, b"


def test_turning_a_flow_on_later_does_not_replay_earlier_changes(driver, app):
    driver.apply(VIP, on=False)
    app.audience.run_commands([(0, Change(command="add_tag", email="ada@example.com", name="vip"))])
    app.set_flow_status("vip", FlowStatus.ON)
    driver.run()
    assert sessions_of(driver, "ada@example.com", "vip") == []


def test_why_not_says_an_imported_tag_starts_nothing_and_the_timeline_names_the_change(driver, app):
    driver.apply(VIP)
    driver.apply(PLAN)
    app.audience.import_subscribers([SubscriberImport(email="frank@example.com", tags=("vip",))])
    assert app.explain("frank@example.com", "vip").sentence == (
        "Never triggered: they have it (tag vip added), but not from a change that starts "
        "flows: an import, or a change made before this trigger named it."
    )
    driver.send("seen", "frank@example.com")
    assert app.explain("frank@example.com", "upgraded").sentence == (
        'Never triggered: this visitor\'s data never changed as it names (field plan changed to "pro").'
    )

    driver.send("$tag", "ada@example.com", details={"tag": "vip"})
    driver.send("a", "ada@example.com", fields={"plan": "pro"})
    told = {}
    for flow in ("vip", "upgraded"):
        [started] = sessions_of(driver, "ada@example.com", flow)
        session = driver.session(started["id"])
        with app.db.read() as conn:
            entries = list(enumerate(session["timeline"]))
            told[flow] = session_lines(conn, session, entries, None)[0].sentence.text()
    assert told["vip"].startswith("Entered the flow “vip” (v1), started when tag vip was added")
    assert told["upgraded"].startswith(
        'Entered the flow “upgraded” (v1), started when field plan changed to "pro"'
    )
