"""Triggers on a date (SPEC §7 Triggers, docs/definitions.md "Triggers on a date"): a
flow starts on the day a visitor's date field names — at a time of day in the
visitor's zone, moved by an offset, once or every year — with a `$date` origin event
in their history. The schedule follows every change of the field, whatever made it,
and every save of the flow; the worker fires what falls due, nothing scans visitors."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from sluice.audience import Change, SubscriberImport
from sluice.definitions.model import DateRule
from sluice.definitions.parse import load_documents, validate_flow
from sluice.definitions.problems import DefinitionError
from sluice.edge import EventInput, InvalidInput
from sluice.engine import dates
from sluice.narration import session_lines
from sluice.records import FlowStatus
from sluice.simulate import simulate_flow
from sluice.store import dates as date_store
from sluice.store.schema import due_checks

BIRTHDAY = """
key: birthday
trigger:
  date: {field: birthday, at: "09:00", every: year}
steps:
  - {id: card, tag: {add: [carded]}}
"""
RENEWAL = """
key: renewal
timezone: Europe/Berlin
trigger:
  date: {field: renews_on, offset: -7d, at: "10:00"}
  if: 'visitor.plan != "free" and event.details.date == visitor.renews_on'
steps:
  - {id: remind, field: {set: {reminded_for: '{{ origin.details.date }}'}}}
"""


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def at(driver, when: datetime) -> None:
    """Move the clock to `when` and run the worker, as a running one would."""
    driver.clock.set(when)
    driver.run()


def started(driver, email: str, flow: str) -> list[str]:
    """When each of the visitor's sessions of `flow` started, oldest first."""
    found = [s for s in driver.visitor(email)["sessions"] if s["flow"] == flow]
    return sorted(s["started_at"] for s in found)


def origins(driver, email: str, flow: str) -> list[dict]:
    found = [s for s in driver.visitor(email)["sessions"] if s["flow"] == flow]
    return [s["origin_event"]["details"] for s in sorted(found, key=lambda s: s["id"])]


def test_a_birthday_starts_the_flow_at_nine_in_the_visitors_zone_each_year(driver):
    driver.apply(BIRTHDAY)
    driver.send("signed_up", "ada@example.com", fields={"birthday": "1990-03-14"})
    driver.send(
        "signed_up",
        "kenji@example.com",
        fields={"birthday": "1985-03-14", "timezone": "Asia/Tokyo"},
    )

    # 09:00 in Tokyo is midnight UTC; Ada has no zone: the server's, UTC.
    at(driver, utc(2026, 3, 13, 23, 59))
    assert started(driver, "kenji@example.com", "birthday") == []
    for when in (utc(2026, 3, 14, 0, 0), utc(2026, 3, 14, 8, 59), utc(2026, 3, 14, 9, 0)):
        at(driver, when)
    at(driver, utc(2026, 12, 31))
    at(driver, utc(2027, 3, 14, 0, 0))
    at(driver, utc(2027, 3, 14, 9, 0))
    at(driver, utc(2027, 3, 15))

    assert started(driver, "kenji@example.com", "birthday") == [
        "2026-03-14T00:00:00+00:00",
        "2027-03-14T00:00:00+00:00",
    ]
    assert started(driver, "ada@example.com", "birthday") == [
        "2026-03-14T09:00:00+00:00",
        "2027-03-14T09:00:00+00:00",
    ]
    assert "carded" in driver.visitor("ada@example.com")["tags"]
    assert origins(driver, "kenji@example.com", "birthday") == [
        {
            "flow": "birthday",
            "field": "birthday",
            "date": f"{year}-03-14",
            "occurrence": f"{year}-03-14T00:00:00+00:00",
        }
        for year in (2026, 2027)
    ]
    history = [e["type"] for e in driver.visitor("ada@example.com")["events"]]
    assert history.count("$date") == 2


def test_a_worker_that_was_down_fires_a_day_up_to_30_days_late_and_passes_over_older(driver):
    driver.apply(BIRTHDAY)
    driver.send("signed_up", "ada@example.com", fields={"birthday": "1990-01-10"})
    driver.send("signed_up", "bob@example.com", fields={"birthday": "1990-02-25"})

    at(driver, utc(2026, 2, 27, 9))  # the worker was down from 5 January

    assert started(driver, "bob@example.com", "birthday") == ["2026-02-27T09:00:00+00:00"]
    assert started(driver, "ada@example.com", "birthday") == []  # 48 days late
    at(driver, utc(2027, 1, 10, 9))
    assert started(driver, "ada@example.com", "birthday") == ["2027-01-10T09:00:00+00:00"]


def test_a_zone_with_dst_keeps_nine_oclock_local_in_summer_and_winter(driver):
    driver.apply(BIRTHDAY)
    for email, day in (("july@example.com", "1990-07-04"), ("dec@example.com", "1990-12-25")):
        driver.send("signed_up", email, fields={"birthday": day, "timezone": "America/New_York"})

    driver.advance(timedelta(days=360))

    assert started(driver, "july@example.com", "birthday") == ["2026-07-04T13:00:00+00:00"]  # EDT
    assert started(driver, "dec@example.com", "birthday") == ["2026-12-25T14:00:00+00:00"]  # EST


def test_a_time_the_clocks_skip_or_repeat_is_read_as_a_time_of_day_wait_reads_it():
    berlin = ZoneInfo("Europe/Berlin")
    skipped = DateRule(field="d", at=time(2, 30))
    # 2026-03-29 02:00 → 03:00 in Berlin: 02:30 is the instant it would have been, 01:30 UTC.
    assert dates.next_occurrence(skipped, "2026-03-29", berlin, utc(2026, 1, 1)).at == utc(
        2026, 3, 29, 1, 30
    )
    # 2026-10-25 03:00 → 02:00: 02:30 comes twice; the first, in summer time.
    assert dates.next_occurrence(skipped, "2026-10-25", berlin, utc(2026, 1, 1)).at == utc(
        2026, 10, 25, 0, 30
    )
    # The offset is counted on the wall clock: a week before 1 April at 10:00 is 10:00 in
    # winter time, though 1 April is in summer time.
    week_before = DateRule(field="d", offset=timedelta(days=-7), at=time(10))
    assert dates.next_occurrence(week_before, "2026-04-01", berlin, utc(2026, 1, 1)).at == utc(
        2026, 3, 25, 9, 0
    )


def test_the_29th_of_february_comes_on_the_28th_in_common_years():
    yearly = DateRule(field="d", every="year")
    utc_zone = ZoneInfo("UTC")
    seen = []
    after = utc(2026, 1, 1)
    for _ in range(3):
        found = dates.next_occurrence(yearly, "2000-02-29", utc_zone, after)
        seen.append(found.day.isoformat())
        after = found.at + timedelta(seconds=1)
    assert seen == ["2026-02-28", "2027-02-28", "2028-02-29"]


def test_a_date_in_any_form_is_its_calendar_day_and_anything_else_is_none():
    assert dates.field_day("2027-03-14").isoformat() == "2027-03-14"
    # Birthdays stored as midnight UTC are still the 14th for a visitor west of Greenwich.
    assert dates.field_day("2027-03-14T00:00:00Z").isoformat() == "2027-03-14"
    assert dates.field_day("2027-03-14T23:30:00-05:00").isoformat() == "2027-03-14"
    for garbage in ("soon", "2027-02-30", "2027-03-14T25:00", "14/03/2027", 1773446400, None, True):
        assert dates.field_day(garbage) is None, garbage


def test_a_change_of_the_field_from_any_source_moves_the_schedule_and_removing_it_cancels(
    driver, app
):
    driver.apply(BIRTHDAY)
    driver.apply(
        "key: grant\ntrigger: {event: grant}\nsteps: [{field: {set: {birthday: '2000-02-03'}}}]"
    )
    driver.send("signed_up", "event@example.com", fields={"birthday": "1990-05-01"})
    driver.send("moved", "event@example.com", fields={"birthday": "1990-02-01"})  # moved earlier
    app.audience.run_commands(
        [
            (
                0,
                Change(
                    command="add_field",
                    email="command@example.com",
                    name="birthday",
                    value="1991-02-02",
                ),
            )
        ]
    )
    app.audience.create_subscriber("person@example.com")
    app.change_visitor(
        Change(command="add_field", email="person@example.com", name="birthday", value="1992-02-02")
    )
    app.audience.import_subscribers(
        [SubscriberImport(email="imported@example.com", fields={"birthday": "1993-02-02"})]
    )
    driver.send("grant", "step@example.com")
    driver.send("signed_up", "gone@example.com", fields={"birthday": "1990-02-01"})
    app.audience.run_commands(
        [(0, Change(command="remove_field", email="gone@example.com", name="birthday"))]
    )
    driver.send("signed_up", "garbled@example.com", fields={"birthday": "1990-02-01"})
    driver.send("typo", "garbled@example.com", fields={"birthday": "Feb 1st"})

    driver.advance(timedelta(days=364))

    assert started(driver, "event@example.com", "birthday") == ["2026-02-01T09:00:00+00:00"]
    assert started(driver, "command@example.com", "birthday") == ["2026-02-02T09:00:00+00:00"]
    assert started(driver, "person@example.com", "birthday") == ["2026-02-02T09:00:00+00:00"]
    # An import starts no flow itself, but the day it names comes all the same.
    assert started(driver, "imported@example.com", "birthday") == ["2026-02-02T09:00:00+00:00"]
    assert started(driver, "step@example.com", "birthday") == ["2026-02-03T09:00:00+00:00"]
    assert started(driver, "gone@example.com", "birthday") == []
    assert started(driver, "garbled@example.com", "birthday") == []


def test_a_visitor_who_moves_to_another_zone_on_the_day_gets_one_session(driver):
    driver.apply(BIRTHDAY)
    driver.send(
        "signed_up", "ada@example.com", fields={"birthday": "1990-03-14", "timezone": "Asia/Tokyo"}
    )
    at(driver, utc(2026, 3, 14, 0, 0))
    # Her birthday at 09:00 in New York is still to come today: it is the same day.
    driver.send("moved", "ada@example.com", fields={"timezone": "America/New_York"})
    at(driver, utc(2026, 3, 14, 13, 0))
    at(driver, utc(2027, 3, 14, 13, 0))

    assert started(driver, "ada@example.com", "birthday") == [
        "2026-03-14T00:00:00+00:00",
        "2027-03-14T13:00:00+00:00",  # 09:00 EDT
    ]


def test_a_flow_saved_after_visitors_have_the_field_schedules_them_and_a_new_trigger_moves_them(
    driver, app, monkeypatch
):
    monkeypatch.setattr(date_store, "CHUNK", 2)  # the pass reads visitors a few at a time
    app.audience.import_subscribers(
        [
            SubscriberImport(email=f"v{i}@example.com", fields={"birthday": "1990-03-14"})
            for i in range(3)
        ]
        + [SubscriberImport(email="other@example.com", fields={"plan": "pro"})]
    )
    driver.apply(BIRTHDAY)
    driver.apply(BIRTHDAY.replace('"09:00"', '"11:00"'))  # a new version moves everyone
    at(driver, utc(2026, 3, 14, 11, 0))
    for i in range(3):
        assert started(driver, f"v{i}@example.com", "birthday") == ["2026-03-14T11:00:00+00:00"]
    assert driver.visitor("other@example.com")["sessions"] == []

    # The trigger no longer a date: nothing comes next year.
    driver.apply(BIRTHDAY.replace('date: {field: birthday, at: "09:00", every: year}', "event: go"))
    driver.advance(timedelta(days=366))
    assert started(driver, "v0@example.com", "birthday") == ["2026-03-14T11:00:00+00:00"]


def test_a_field_whose_name_has_a_quote_is_read_all_the_same(driver, app):
    flow = BIRTHDAY.replace("field: birthday", "field: 'born \"on\"'")
    app.audience.import_subscribers(
        [SubscriberImport(email="ada@example.com", fields={'born "on"': "1990-01-07"})]
    )
    driver.apply(flow)
    driver.send("signed_up", "bob@example.com", fields={'born "on"': "1990-01-08"})
    driver.advance(timedelta(days=4))
    assert started(driver, "ada@example.com", "birthday") == ["2026-01-07T09:00:00+00:00"]
    assert started(driver, "bob@example.com", "birthday") == ["2026-01-08T09:00:00+00:00"]


def test_once_with_an_offset_fires_a_week_before_the_date_and_a_past_date_never(driver, app):
    driver.apply(RENEWAL)
    driver.send("subscribed", "ada@example.com", fields={"renews_on": "2026-04-01"})
    driver.send(
        "subscribed", "late@example.com", fields={"renews_on": "2026-01-08"}
    )  # 7d before: passed
    driver.send("subscribed", "old@example.com", fields={"renews_on": "2025-06-01"})
    driver.send(
        "subscribed", "free@example.com", fields={"renews_on": "2026-04-01", "plan": "free"}
    )

    driver.advance(timedelta(days=400))

    # 10:00 in Berlin on 25 March (winter time) is 09:00 UTC.
    assert started(driver, "ada@example.com", "renewal") == ["2026-03-25T09:00:00+00:00"]
    assert origins(driver, "ada@example.com", "renewal")[0]["offset"] == "-7d"
    assert driver.visitor("ada@example.com")["fields"]["reminded_for"] == "2026-04-01"
    assert started(driver, "late@example.com", "renewal") == []
    assert started(driver, "old@example.com", "renewal") == []
    # The trigger's `if` sees the visitor and the $date event as `event`.
    assert started(driver, "free@example.com", "renewal") == []
    [refusal] = app.export_visitor("free@example.com")["trigger_refusals"]
    assert (refusal["reason"], refusal["event"]["type"]) == ("condition_false", "$date")


def test_a_flow_that_is_off_records_a_refusal_when_the_day_comes_and_on_replays_nothing(
    driver, app
):
    driver.apply(BIRTHDAY, on=False)
    driver.send("signed_up", "ada@example.com", fields={"birthday": "1990-03-14"})
    at(driver, utc(2026, 3, 14, 9, 0))

    assert started(driver, "ada@example.com", "birthday") == []
    [refusal] = app.export_visitor("ada@example.com")["trigger_refusals"]
    assert (refusal["flow"], refusal["reason"], refusal["event"]["type"]) == (
        "birthday",
        "flow_off",
        "$date",
    )
    assert app.explain("ada@example.com", "birthday").verdict == "flow_off"

    app.set_flow_status("birthday", FlowStatus.ON)
    at(driver, utc(2026, 3, 15))
    assert started(driver, "ada@example.com", "birthday") == []
    at(driver, utc(2027, 3, 14, 9, 0))
    assert started(driver, "ada@example.com", "birthday") == ["2027-03-14T09:00:00+00:00"]


def test_a_garbage_date_schedules_nothing_and_fails_nothing(driver, app, caplog):
    driver.apply(BIRTHDAY)
    for i, value in enumerate(["soon", "1990-02-30", 19900314, {"y": 1990}, True, ""]):
        driver.send("signed_up", f"g{i}@example.com", fields={"birthday": value})
    driver.send("signed_up", "fine@example.com", fields={"birthday": "1990-01-10"})

    driver.advance(timedelta(days=10))

    assert started(driver, "fine@example.com", "birthday") == ["2026-01-10T09:00:00+00:00"]
    for i in range(6):
        assert driver.visitor(f"g{i}@example.com")["sessions"] == []
    assert [r.message for r in caplog.records if r.levelname == "ERROR"] == []
    assert app.explain("g0@example.com", "birthday").sentence == (
        'Never triggered: field birthday holds "soon", which is not a date '
        "(date birthday, yearly at 09:00)."
    )
    assert app.explain("g5@example.com", "birthday").verdict == "never_triggered"


def test_why_not_and_the_timeline_tell_the_date(driver, app):
    driver.apply(BIRTHDAY)
    driver.apply(RENEWAL)
    driver.send("signed_up", "ada@example.com", fields={"birthday": "1990-03-14"})
    driver.send("signed_up", "bob@example.com", fields={"plan": "pro", "renews_on": "2020-01-01"})

    assert app.explain("ada@example.com", "birthday").sentence == (
        "Never triggered: the date in field birthday (1990-03-14) has not come yet; "
        f"it comes next on {_when(utc(2026, 3, 14, 9))}."
    )
    assert app.explain("bob@example.com", "birthday").sentence == (
        "Never triggered: this visitor has no field birthday (date birthday, yearly at 09:00)."
    )
    assert app.explain("bob@example.com", "renewal").sentence == (
        "Never triggered: the date in field renews_on (2020-01-01) had passed when it was "
        "scheduled (date renews_on -7d at 10:00), and a date in the past starts nothing."
    )

    at(driver, utc(2026, 3, 14, 9))
    [session] = [s for s in driver.visitor("ada@example.com")["sessions"]]
    shown = driver.session(session["id"])
    with app.db.read() as conn:
        line = session_lines(conn, shown, list(enumerate(shown["timeline"])), None)[0]
    assert line.sentence.text().startswith(
        "Entered the flow “birthday” (v1), started when the date in field birthday came: "
        "2026-03-14 (event"
    )


def test_an_erased_visitor_leaves_no_schedule_and_is_never_fired_for(driver, app):
    driver.apply(BIRTHDAY)
    driver.send("signed_up", "ada@example.com", fields={"birthday": "1990-03-14"})
    app.erase_visitor("ada@example.com")
    driver.send("signed_up", "ada@example.com")  # a newcomer at the same address

    with app.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(due_checks)).scalar() == 0
    at(driver, utc(2026, 3, 14, 9))
    assert driver.visitor("ada@example.com")["sessions"] == []


def test_a_simulation_reaches_the_day_the_field_names(app):
    """The builder's try-out sets the field with an event; the virtual clock runs to it."""
    result = simulate_flow(
        [("b.yaml", doc) for doc in load_documents(BIRTHDAY, "b.yaml")],
        {
            "visitor": {"email": "sim@example.com", "fields": {"timezone": "Asia/Tokyo"}},
            "events": [
                {
                    "at": "2026-05-01T00:00:00Z",
                    "type": "$update_fields",
                    "fields": {"birthday": "1990-05-03"},
                }
            ],
        },
        stored=app,
    )
    # The simulation runs 400 days past the last event: this year's birthday, and next.
    assert [(s["status"], s["started_at"]) for s in result["sessions"]] == [
        ("completed", "2026-05-03T00:00:00+00:00"),
        ("completed", "2027-05-03T00:00:00+00:00"),
    ]
    assert "carded" in result["visitor"]["tags"]


def test_clients_cannot_send_date_events():
    with pytest.raises(InvalidInput) as refused:
        EventInput.checked({"type": "$date", "email": "a@example.com"}, source="api")
    assert "date trigger's day comes" in refused.value.problems[0]["msg"]


def trigger_of(text: str):
    [doc] = load_documents(f"key: x\ntrigger: {text}\nsteps: [{{exit: true}}]\n")
    return validate_flow(doc).trigger


def test_a_date_trigger_is_described_in_words():
    assert trigger_of('{date: {field: birthday, at: "09:00", every: year}}').describe() == (
        "date birthday, yearly at 09:00"
    )
    assert trigger_of('{date: {field: renews_on, offset: -1w, at: "10:00"}}').describe() == (
        "date renews_on -7d at 10:00"
    )
    assert trigger_of("{date: {field: d, offset: 1d12h}}").describe() == "date d +1d12h at 09:00"


@pytest.mark.parametrize(
    ("date", "problems"),
    [
        (
            {"field": "birthday", "every": "month"},
            [
                "trigger.date.every: invalid value 'month' (use year: a date comes again each "
                "year; leave every out for once)"
            ],
        ),
        (
            {"field": "renews_on", "offset": "-7 days"},
            ["trigger.date.offset: invalid duration '-7 days' (use -7d)"],
        ),
        (
            {"field": "renews_on", "offset": "P1M"},
            [
                "trigger.date.offset: invalid duration 'P1M' (months and years vary in length; "
                "use days or weeks)"
            ],
        ),
        (
            {"field": "birthday", "at": "9am"},
            ["trigger.date.at: invalid time of day '9am' (use HH:MM, e.g. 09:30)"],
        ),
        (
            {"field": "birthday", "at": 900},
            ['trigger.date.at: expected a time of day as a string, e.g. "09:30"'],
        ),
        (
            {"field": "birthday", "time": "09:00", "when": "yearly"},
            ["trigger.date.time: unknown key 'time'", "trigger.date.when: unknown key 'when'"],
        ),
        ({"at": "09:00"}, ["trigger.date.field: missing required key 'field'"]),
        (
            "birthday",
            ["trigger.date: expected a mapping, e.g. {field: birthday, every: year}"],
        ),
    ],
)
def test_a_bad_date_trigger_is_refused_saying_where_and_why(date, problems):
    with pytest.raises(DefinitionError) as invalid:
        validate_flow({"key": "x", "trigger": {"date": date}, "steps": [{"exit": True}]})
    assert [str(p) for p in invalid.value.problems] == problems


def test_a_date_trigger_is_one_kind_among_the_others():
    with pytest.raises(DefinitionError) as invalid:
        validate_flow(
            {
                "key": "x",
                "trigger": {"event": "go", "date": {"field": "d"}},
                "steps": [{"exit": True}],
            }
        )
    assert "trigger: expected only one of event, date" in str(invalid.value)


def _when(instant: datetime) -> str:
    from sluice.narration import when

    return when(instant)


def test_a_date_offset_after_the_day_may_carry_its_plus_sign():
    flow = {
        "key": "after",
        "trigger": {"date": {"field": "d", "offset": "+7d"}},
        "steps": [{"tag": {"add": ["x"]}}],
    }
    assert validate_flow(flow).trigger.date.offset == timedelta(days=7)
    flow["trigger"]["date"]["offset"] = "+-7d"
    with pytest.raises(DefinitionError, match="one sign at most"):
        validate_flow(flow)
