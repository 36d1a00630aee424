"""Simulations through `sluice.simulate`: the virtual clock starts where the script
says, and every `+offset` counts from that start."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sluice.definitions.parse import load_documents
from sluice.simulate import ScriptError, simulate_flow

FLOW = """
key: cart
trigger: {event: checkout_started}
steps:
  - id: wait_purchase
    wait_for: {event: $purchase, timeout: 4h}
    then: [{id: thanks, tag: {add: [customer]}}]
"""


def documents() -> list[tuple[str, dict]]:
    return [("cart.yaml", doc) for doc in load_documents(FLOW, "cart.yaml")]


def script(*events: dict) -> dict:
    return {"visitor": {"email": "sim@example.com"}, "events": list(events)}


def times(result: dict) -> dict[str, str]:
    """The time of each event type the simulated visitor sent."""
    return {event["type"]: event["date"] for event in result["visitor"]["events"]}


def test_offsets_count_from_the_first_absolute_time(app, clock):
    """Even an offset above the absolute time counts from it, not from the real clock."""
    result = simulate_flow(
        documents(),
        script(
            {"at": "+0s", "type": "checkout_started"},
            {"at": "2026-05-01T09:00:00+02:00", "type": "page_view"},
            {"at": "+3h", "type": "$purchase"},
        ),
        stored=app,
    )
    assert times(result) == {
        "checkout_started": "2026-05-01T07:00:00+00:00",
        "page_view": "2026-05-01T07:00:00+00:00",
        "$purchase": "2026-05-01T10:00:00+00:00",
    }


def test_offsets_count_from_the_start_not_from_the_event_above(app, clock):
    result = simulate_flow(
        documents(),
        script(
            {"at": "2026-05-01T09:00:00Z", "type": "checkout_started"},
            {"at": "+3h", "type": "$purchase"},
        ),
        stored=app,
    )
    assert times(result) == {
        "checkout_started": "2026-05-01T09:00:00+00:00",
        "$purchase": "2026-05-01T12:00:00+00:00",
    }
    [session] = result["sessions"]
    received = next(e for e in session["timeline"] if e["kind"] == "event_received")
    assert received["at"] == "2026-05-01T12:00:00+00:00"
    assert result["visitor"]["tags"] == ["customer"]


def test_a_script_of_offsets_starts_now(app, clock):
    clock.set(datetime(2026, 3, 2, 10, 30, tzinfo=UTC))
    result = simulate_flow(
        documents(),
        script({"type": "checkout_started"}, {"at": "+5h", "type": "$purchase"}),
        stored=app,
    )
    assert times(result) == {
        "checkout_started": "2026-03-02T10:30:00+00:00",
        "$purchase": "2026-03-02T15:30:00+00:00",
    }
    [session] = result["sessions"]
    assert session["timeline"][0]["at"] == "2026-03-02T10:30:00+00:00"
    timed_out = next(e for e in session["timeline"] if e["kind"] == "wait_timed_out")
    assert timed_out["at"] == "2026-03-02T14:30:00+00:00"
    assert result["visitor"]["tags"] == []  # 5h after the start: too late for the 4h wait


@pytest.mark.parametrize(
    ("events", "message"),
    [
        (
            [
                {"at": "2026-05-01T09:00:00Z", "type": "a"},
                {"at": "2026-05-01T08:59:00Z", "type": "b"},
            ],
            "events[1].at: 2026-05-01T08:59:00Z is before events[0] (2026-05-01T09:00:00Z)",
        ),
        (
            [{"at": "+1d", "type": "a"}, {"at": "2026-05-01T09:00:00Z", "type": "b"}],
            "events[1].at: 2026-05-01T09:00:00Z is before events[0] (2026-05-02T09:00:00Z)",
        ),
        (
            [{"at": "+999999999d", "type": "a"}],
            "events[0].at: duration '999999999d' is too long: at most 3650d (10 years)",
        ),
        (
            [{"at": "9999-12-31T00:00:00Z", "type": "a"}],
            "events[0].at: '9999-12-31T00:00:00Z' is too far in the future",
        ),
        ([{"at": "+2 days", "type": "a"}], "events[0].at: invalid duration '2 days'"),
    ],
)
def test_a_script_out_of_order_or_out_of_range_is_refused(app, events, message):
    with pytest.raises(ScriptError) as refused:
        simulate_flow(documents(), script(*events), stored=app)
    assert str(refused.value).startswith(message)


@pytest.mark.parametrize(
    ("script_", "message"),
    [
        (
            {
                "visitor": {"email": "sim@example.com"},
                "events": [{"type": "a", "details": {"n": 2**64}}],
            },
            "events[0]: details.n: a whole number beyond 64 bits (-2^63 to 2^64-1) cannot be stored",
        ),
        (
            {
                "visitor": {"email": "sim@example.com"},
                "events": [{"type": "a", "details": {"s": "\x00"}}],
            },
            "events[0]: details.s: text may not contain a NUL character",
        ),
        (
            {"visitor": {"email": "sim@example.com", "fields": {"n": -(2**70)}}, "events": []},
            "visitor.fields.n: a whole number beyond 64 bits (-2^63 to 2^64-1) cannot be stored",
        ),
    ],
)
def test_a_script_with_what_no_database_can_store_is_refused_at_its_path(app, script_, message):
    with pytest.raises(ScriptError) as refused:
        simulate_flow(documents(), script_, stored=app)
    assert str(refused.value) == message


def test_a_webhook_is_taken_as_answered_and_the_flow_goes_on(app, clock):
    """Nothing is sent from a simulation; a webhook step is taken as answered 200, so
    the predicted path carries on past it instead of stopping there."""
    flow = """
key: crm
trigger: {event: signed_up}
steps:
  - id: notify
    webhook:
      url: "https://crm.example.com/hook"
      body: {email: "{{ visitor.email }}"}
      on_failure: [{id: flag, tag: {add: [crm_failed]}}]
  - id: done
    tag: {add: [synced]}
"""
    result = simulate_flow(
        [("crm.yaml", doc) for doc in load_documents(flow, "crm.yaml")],
        script({"at": "+0s", "type": "signed_up"}),
        stored=app,
    )
    [session] = result["sessions"]
    assert session["status"] == "completed"
    delivered = [e for e in session["timeline"] if e["kind"] == "webhook_delivered"]
    assert delivered and delivered[0]["data"] == {"status": 200, "simulated": True}
    assert "synced" in result["visitor"]["tags"] and "crm_failed" not in result["visitor"]["tags"]


def test_a_simulation_logs_no_migrations(app, caplog):
    """Each simulation makes a scratch database; its migrations are not news in the
    server's log (13 INFO lines for each Simulate in the builder)."""
    caplog.set_level("INFO")
    result = simulate_flow(
        documents(), script({"at": "+0s", "type": "checkout_started"}), stored=app
    )
    assert [s["flow"] for s in result["sessions"]] == ["cart"]
    assert [r.getMessage() for r in caplog.records if r.name.startswith("alembic")] == []


def test_a_simulation_starts_a_flow_triggered_by_a_field_change(app):
    """The builder's try-out sends the change as an event's `fields`."""
    flow = "key: pro\ntrigger: {field_changed: {field: plan, to: pro}}\nsteps: [{id: t, tag: {add: [pro]}}]"
    result = simulate_flow(
        [("pro.yaml", doc) for doc in load_documents(flow, "pro.yaml")],
        script(
            {"at": "+0s", "type": "$update_fields", "fields": {"plan": "free"}},
            {"at": "+1d", "type": "$update_fields", "fields": {"plan": "pro"}},
        ),
        stored=app,
    )
    [session] = result["sessions"]
    assert session["status"] == "completed"
    assert result["visitor"]["tags"] == ["pro"]
    [origin] = [e for e in result["visitor"]["events"] if e["type"] == "$field_changed"]
    assert origin["details"] == {"field": "plan", "from": "free", "to": "pro"}
