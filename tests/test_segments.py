"""Segments (SPEC §7, docs/segments.md): membership kept as data in the transaction of
every change that moves a visitor, windows re-checked when they pass (due checks),
entries and exits recorded in the history, the `segment` trigger, and
`visitor.segments` in conditions."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from sluice.audience import Change, SubscriberImport
from sluice.definitions.parse import load_documents
from sluice.definitions.problems import DefinitionError
from sluice.definitions.segments import validate_segment
from sluice.narration import session_lines

REPEAT_BUYERS = """
kind: segment
key: repeat_buyers
name: Repeat buyers
rules:
  - event: $purchase
    at_least: 2
    within: 30d
    where: "event.details.amount >= 10"
"""
VIPS = """
kind: segment
key: vips
name: VIPs
match: any
rules:
  - tag: vip
  - all:
      - field: plan
        equals: pro
      - subscribed: true
"""
THANK_REPEAT_BUYERS = """
key: thanks
trigger: {segment: {key: repeat_buyers, on: entered}}
steps:
  - {id: thank, tag: {add: [thanked]}}
"""


def events_of(driver, email: str, event_type: str) -> list[dict]:
    return [e for e in driver.visitor(email)["events"] if e["type"] == event_type]


def sessions_of(driver, email: str, flow: str) -> list[dict]:
    return [s for s in driver.visitor(email)["sessions"] if s["flow"] == flow]


def member_emails(app, key: str) -> list[str]:
    return [m["email"] for m in app.segment_members(key, limit=100)]


def test_two_purchases_in_30_days_enter_the_segment_and_its_flow_and_the_window_lets_go(
    driver, app, clock
):
    driver.apply(REPEAT_BUYERS + "---" + THANK_REPEAT_BUYERS)

    driver.send("$purchase", "ada@example.com", details={"amount": 20})
    driver.send("$purchase", "ada@example.com", details={"amount": 5})  # `where` says no
    assert member_emails(app, "repeat_buyers") == []
    driver.advance(timedelta(days=10))
    driver.send("$purchase", "ada@example.com", details={"amount": 12})

    assert member_emails(app, "repeat_buyers") == ["ada@example.com"]
    [entered] = events_of(driver, "ada@example.com", "$segment_entered")
    assert entered["details"] == {"segment": "repeat_buyers"}
    [session] = sessions_of(driver, "ada@example.com", "thanks")
    assert session["status"] == "completed"
    assert driver.session(session["id"])["origin_event"]["id"] == entered["id"]
    assert "thanked" in driver.visitor("ada@example.com")["tags"]
    told = driver.session(session["id"])
    with app.db.read() as conn:
        entries = list(enumerate(told["timeline"]))
        first = session_lines(conn, told, entries, None)[0].sentence.text()
    assert first.startswith(
        "Entered the flow “thanks” (v1), started when they entered segment repeat_buyers"
    )
    driver.send("$purchase", "bob@example.com", details={"amount": 20})
    assert app.explain("bob@example.com", "thanks").sentence == (
        "Never triggered: this visitor was never recorded as segment repeat_buyers entered."
    )

    # The first purchase leaves the 30-day window 30 days after it: 20 days from now.
    driver.advance(timedelta(days=19, hours=23))
    assert member_emails(app, "repeat_buyers") == ["ada@example.com"]
    driver.advance(timedelta(hours=2))
    assert member_emails(app, "repeat_buyers") == []
    [left] = events_of(driver, "ada@example.com", "$segment_left")
    assert left["details"] == {"segment": "repeat_buyers"}
    assert app.segment("repeat_buyers")["members"] == 0


def test_every_source_of_a_change_moves_visitors_and_only_an_import_starts_no_flow(driver, app):
    driver.apply(
        VIPS
        + "---\nkey: welcome_vip\ntrigger: {segment: vips}\nsteps: [{id: mark, tag: {add: [welcomed]}}]\n"
        + "---\nkey: grant\ntrigger: {event: upgraded}\nsteps: [{id: grant, tag: {add: [vip]}}]"
    )
    driver.send("$tag", "event@example.com", details={"tag": "vip"})
    driver.send("signed_up", "fields@example.com", fields={"plan": "pro"})
    app.audience.run_commands(
        [(0, Change(command="add_tag", email="command@example.com", name="vip"))]
    )
    app.audience.create_subscriber("person@example.com")
    app.change_visitor(
        Change(command="add_field", email="person@example.com", name="plan", value="pro")
    )
    driver.send("upgraded", "step@example.com")
    app.audience.import_subscribers([SubscriberImport(email="imported@example.com", tags=("vip",))])
    driver.run()

    sources = ["event", "fields", "command", "person", "step"]
    expected = sorted(f"{s}@example.com" for s in [*sources, "imported"])
    assert sorted(member_emails(app, "vips")) == expected
    for source in sources:
        address = f"{source}@example.com"
        assert "welcomed" in driver.visitor(address)["tags"], address
    imported = driver.visitor("imported@example.com")
    assert [e["type"] for e in imported["events"]] == ["$segment_entered"]
    assert imported["sessions"] == []

    # Leaving: unsubscribing takes the pro-plan visitor out; the tagged one stays.
    driver.send("$unsubscribe", "fields@example.com")
    driver.send("$unsubscribe", "event@example.com")
    assert "fields@example.com" not in member_emails(app, "vips")
    assert "event@example.com" in member_emails(app, "vips")
    assert len(events_of(driver, "fields@example.com", "$segment_left")) == 1


def test_saving_rules_decides_everyone_again_without_starting_flows(driver, app):
    nobody = VIPS.replace("  - tag: vip\n", "  - tag: nobody-has-this\n")
    driver.apply(
        nobody + "---\nkey: welcome_vip\ntrigger: {segment: vips}\n"
        "steps: [{id: mark, tag: {add: [w]}}]\n"
    )
    driver.send("$tag", "ada@example.com", details={"tag": "vip"})
    driver.send("signed_up", "bob@example.com", fields={"plan": "pro"})
    driver.send("$unsubscribe", "bob@example.com")
    assert member_emails(app, "vips") == []

    report = driver.apply(VIPS)
    assert report.segments == {"vips": 2}
    assert member_emails(app, "vips") == ["ada@example.com"]
    assert sessions_of(driver, "ada@example.com", "welcome_vip") == []
    assert len(events_of(driver, "ada@example.com", "$segment_entered")) == 1

    # A narrower version lets Ada go; the same text again is no new version.
    narrower = VIPS.replace("match: any", "match: all")
    assert driver.apply(narrower).segments == {"vips": 3}
    assert member_emails(app, "vips") == []
    assert len(events_of(driver, "ada@example.com", "$segment_left")) == 1
    assert driver.apply(narrower).segments == {"vips": None}
    changes = app.segment("vips")["changes"]
    assert [c["version"] for c in changes] == [1, 2, 3]
    assert "-match: any" in changes[2]["diff"]


def test_a_segment_trigger_must_name_a_segment_there_is(app):
    flow = "key: typo\ntrigger: {segment: vip}\nsteps: [{id: mark, tag: {add: [w]}}]\n"
    with pytest.raises(DefinitionError) as error:
        app.apply([("typo.yaml", d) for d in load_documents(flow, "typo.yaml")])
    assert [str(p) for p in error.value.problems] == [
        "trigger.segment: no segment 'vip' (there are none yet)"
    ]
    app.apply([("vips.yaml", d) for d in load_documents(VIPS, "vips.yaml")])
    with pytest.raises(DefinitionError, match=r"no segment 'vip' \(segments: vips\)"):
        app.apply([("typo.yaml", d) for d in load_documents(flow, "typo.yaml")])


def test_conditions_in_flows_read_visitor_segments(driver):
    driver.apply(
        VIPS
        + """---
key: offer
trigger: {event: checkout}
steps:
  - id: which
    if: 'visitor.segments contains "vips"'
    then: [{id: vip_offer, tag: {add: [vip-offer]}}]
    else: [{id: plain_offer, tag: {add: [plain-offer]}}]
"""
    )
    driver.send("$tag", "ada@example.com", details={"tag": "vip"})
    driver.send("checkout", "ada@example.com")
    driver.send("checkout", "bob@example.com")
    assert "vip-offer" in driver.visitor("ada@example.com")["tags"]
    assert "plain-offer" in driver.visitor("bob@example.com")["tags"]
    assert driver.visitor("ada@example.com")["segments"] == ["vips"]


def test_field_rules_on_dates_and_numbers(driver, app, clock):
    driver.apply(
        """
kind: segment
key: new_big_spenders
name: New big spenders
rules:
  - field: signed_up_on
    within: 7d
  - field: spent
    at_least: 100
"""
    )
    today = clock.now().date().isoformat()
    driver.send("signed_up", "ada@example.com", fields={"signed_up_on": today, "spent": "150"})
    driver.send("signed_up", "bob@example.com", fields={"signed_up_on": today, "spent": 20})
    driver.send("signed_up", "cy@example.com", fields={"signed_up_on": "not a date", "spent": 500})
    assert member_emails(app, "new_big_spenders") == ["ada@example.com"]
    driver.advance(timedelta(days=8))
    assert member_emails(app, "new_big_spenders") == []


def test_an_erased_visitor_leaves_every_segment(driver, app):
    driver.apply(VIPS)
    driver.send("$tag", "ada@example.com", details={"tag": "vip"})
    app.erase_visitor("ada@example.com")
    assert app.segment("vips")["members"] == 0


def test_a_date_is_compared_with_an_offset_from_now_either_way():
    [document] = load_documents(
        "kind: segment\nkey: s\nname: S\nrules:\n"
        "  - {field: renews, before: +7d}\n  - {field: joined, after: -30d}\n",
        "s.yaml",
    )
    renews, joined = validate_segment(document).rules.rules
    assert renews.value == timedelta(days=7) and joined.value == timedelta(days=-30)


@pytest.mark.parametrize(
    ("rules", "loc", "message"),
    [
        ("[{tag: vip, has: maybe}]", "rules[0].has", "expected true or false"),
        ("[{field: plan}]", "rules[0]", "expected one test of the field"),
        ("[{field: age, at_least: old}]", "rules[0].at_least", "expected a number"),
        ("[{event: $purchase, within: soon}]", "rules[0].within", "invalid duration"),
        ("[{event: $purchase, where: 'a =='}]", "rules[0].where", ""),
        ("[{event: $segment_entered}]", "rules[0].event", "cannot count entries"),
        ("[{any: []}]", "rules[0].any", "expected at least one item"),
        ("[{colour: red}]", "rules[0]", "expected one of tag, field"),
        ("[{field: d, before: yesterday}]", "rules[0].before", "expected a date"),
        ("[]", "rules", "expected at least one item"),
    ],
)
def test_bad_rules_are_refused_with_where_and_why(rules, loc, message):
    [document] = load_documents(f"kind: segment\nkey: s\nname: S\nrules: {rules}\n", "s.yaml")
    with pytest.raises(DefinitionError) as error:
        validate_segment(document)
    found = [(p.loc, p.msg) for p in error.value.problems]
    assert any(p_loc == loc and message in msg for p_loc, msg in found), found


# -- the API and the CLI ------------------------------------------------------------------


@pytest.fixture
def api(app):
    from api_support import api_in_process

    with api_in_process(app) as api:
        yield api


def test_segments_are_put_listed_shown_counted_and_their_members_paged(api, driver):
    yaml = {"Content-Type": "application/yaml"}
    for n in range(5):
        driver.send("$tag", f"v{n}@example.com", details={"tag": "vip"})
    driver.send("signed_up", "plain@example.com")

    created = api.put("/segments/vips", content=VIPS, headers=yaml, params={"note": "first"})
    assert created.status_code == 201, created.text
    assert (created.json()["members"], created.json()["version"]) == (5, 1)
    assert created.json()["changes"][0]["note"] == "first"
    assert api.put("/segments/vips", content=VIPS, headers=yaml).status_code == 200
    assert api.get("/segments").json() == [
        {
            "key": "vips",
            "name": "VIPs",
            "version": 1,
            "members": 5,
            "updated_at": created.json()["updated_at"],
        }
    ]
    first = api.get("/segments/vips/members", params={"limit": 3}).json()
    rest = api.get("/segments/vips/members", params={"limit": 3, "after": first[-1]["id"]}).json()
    assert [m["email"] for m in first + rest] == [f"v{n}@example.com" for n in range(5)]
    assert api.get("/visitors/v0@example.com").json()["segments"] == ["vips"]

    preview = api.post("/segments/preview", json={"name": "P", "rules": [{"subscribed": True}]})
    assert preview.json() == {"members": 6}
    stats = api.bento_get("/stats/segment", segment_id="vips")
    assert stats.json() == {"user_count": 5, "subscriber_count": 5, "unsubscriber_count": 0}

    assert api.get("/segments/nope").status_code == 404
    assert api.get("/segments/nope/members").status_code == 404
    assert api.bento_get("/stats/segment", segment_id="nope").status_code == 404
    bad = api.put("/segments/vips", json={"name": "VIPs", "rules": [{"tag": ""}]})
    assert bad.status_code == 422
    assert bad.json()["detail"] == [{"loc": "rules[0].tag", "msg": "expected a non-empty string"}]
    other = api.put("/segments/vips", json={"key": "other", "name": "x", "rules": [{"tag": "a"}]})
    assert other.status_code == 422
    flow_as_segment = api.put("/flows/vips", content=VIPS, headers=yaml)
    assert flow_as_segment.status_code == 422
    assert api.get("/segments/vips").json()["version"] == 1  # nothing bad was saved


def test_the_cli_lists_shows_and_pages_segments(app, driver, tmp_path):
    from click.testing import CliRunner

    from sluice.cli import main

    path = tmp_path / "vips.yaml"
    path.write_text(VIPS)
    url = app.settings.database_url
    runner = CliRunner()
    applied = runner.invoke(main, ["--database-url", url, "flows", "apply", str(path)])
    assert applied.exit_code == 0, applied.output
    assert "segment vips: saved v1" in applied.output
    driver.send("$tag", "ada@example.com", details={"tag": "vip"})

    listed = runner.invoke(main, ["--database-url", url, "segments", "list", "--json"])
    assert [(s["key"], s["members"]) for s in json.loads(listed.output)] == [("vips", 1)]
    shown = runner.invoke(main, ["--database-url", url, "segments", "show", "vips"])
    assert "vips (VIPs): 1 member(s), version 1" in shown.output
    assert "\nmatch: any\n" in shown.output  # the text as written, line by line
    assert "v1 " in shown.output.split("changes:")[1]
    members = runner.invoke(main, ["--database-url", url, "segments", "members", "vips"])
    assert "ada@example.com" in members.output
    missing = runner.invoke(main, ["--database-url", url, "segments", "show", "nope"])
    assert missing.exit_code == 1
    assert "no segment with key 'nope'" in missing.output


def test_deleting_a_tag_takes_its_holders_out_of_segments_that_name_it(driver, app):
    driver.apply(VIPS)
    driver.send("$tag", "ada@example.com", details={"tag": "vip"})
    [tag] = [t for t in app.audience.tags() if t.name == "vip"]
    assert app.audience.delete_tag(tag.id, "vip") == 1
    assert member_emails(app, "vips") == []
    assert len(events_of(driver, "ada@example.com", "$segment_left")) == 1


def test_a_triggers_if_reads_the_segments_the_visitor_was_in_before_the_event(driver):
    driver.apply(
        VIPS
        + "---\nkey: vip_checkout\ntrigger: {event: checkout, if: 'visitor.segments contains \"vips\"'}\n"
        + "steps: [{id: mark, tag: {add: [vip-checkout]}}]\n"
    )
    driver.send("$tag", "ada@example.com", details={"tag": "vip"})
    driver.send("checkout", "ada@example.com")
    driver.send("checkout", "bob@example.com")
    assert "vip-checkout" in driver.visitor("ada@example.com")["tags"]
    assert "vip-checkout" not in driver.visitor("bob@example.com")["tags"]


@pytest.mark.parametrize(
    ("test", "count", "days", "recheck"),
    [
        ("at_least", 2, [1], None),  # out, and fewer events only keep them out
        ("at_least", 2, [1, 5, 9], 5),  # 3 counted: out once the second oldest leaves
        ("at_most", 1, [1, 5, 9], 5),  # 3: in once two have left
        ("at_most", 3, [1, 5], None),
        ("exactly", 2, [1, 5], 1),
        ("exactly", 2, [1, 5, 9], 1),
        ("exactly", 2, [1], None),
    ],
)
def test_a_window_is_rechecked_only_when_its_passing_can_move_the_visitor(
    test, count, days, recheck
):
    from datetime import UTC, datetime

    from sluice.engine.segments import CountedEvent, evaluate

    day = datetime(2026, 1, 1, tzinfo=UTC)
    rules = f"[{{event: $purchase, {test}: {count}, within: 30d}}]"
    [document] = load_documents(f"kind: segment\nkey: s\nname: S\nrules: {rules}\n", "s.yaml")
    segment = validate_segment(document)
    events = [CountedEvent("$purchase", day + timedelta(days=d), {}) for d in days]
    verdict = evaluate(segment, {"tags": [], "fields": {}}, events, day + timedelta(days=10))
    expected = None if recheck is None else day + timedelta(days=recheck + 30)
    assert verdict.recheck_at == expected


def test_dates_at_the_ends_of_the_calendar_are_read_within_bounds(driver, app, clock):
    driver.send("signed_up", "never@example.com", fields={"renew": "9999-12-31"})
    driver.send("signed_up", "late@example.com", fields={"renew": "9999-12-31T23:00:00-05:00"})
    driver.send("signed_up", "early@example.com", fields={"renew": "0001-01-01"})
    soon = (clock.now() + timedelta(days=3)).date().isoformat()
    driver.send("signed_up", "soon@example.com", fields={"renew": soon})
    driver.apply(
        "kind: segment\nkey: renewing\nname: Renewing\nrules: [{field: renew, within_next: 7d}]\n"
        "---\nkind: segment\nkey: ancient\nname: Ancient\nrules: [{field: renew, before: +7d}]\n"
    )
    assert member_emails(app, "renewing") == ["soon@example.com"]
    assert member_emails(app, "ancient") == ["early@example.com", "soon@example.com"]
    driver.send("seen", "never@example.com", fields={"renew": "9999-12-30"})  # no error either
    driver.advance(timedelta(days=8))
    assert member_emails(app, "renewing") == []


def test_a_segment_of_those_who_did_not_yet_gets_new_visitors(driver, app):
    driver.apply(
        "kind: segment\nkey: not_bought\nname: Not bought yet\n"
        "rules: [{event: $purchase, at_most: 0}]\n"
        "---\nkind: segment\nkey: above_threshold\nname: Above\n"
        "rules: [{event: ping, where: 'event.details.amount > visitor.threshold'}]\n"
    )
    driver.send("signed_up", "new@example.com")
    app.audience.import_subscribers([SubscriberImport(email="imported@example.com")])
    assert app.audience.create_subscriber("created@example.com")
    assert member_emails(app, "not_bought") == [
        "new@example.com",
        "imported@example.com",
        "created@example.com",
    ]
    driver.send("$purchase", "new@example.com")
    assert member_emails(app, "not_bought") == ["imported@example.com", "created@example.com"]

    # A `where` that reads the visitor is decided again when their fields change.
    driver.send("ping", "ada@example.com", details={"amount": 5}, fields={"threshold": 10})
    assert member_emails(app, "above_threshold") == []
    driver.send("lowered", "ada@example.com", fields={"threshold": 1})
    assert member_emails(app, "above_threshold") == ["ada@example.com"]


def test_only_numbers_as_json_spells_them_are_compared(driver, app):
    driver.apply("kind: segment\nkey: big\nname: Big\nrules: [{field: spent, greater_than: 100}]\n")
    for n, spent in enumerate(["150", "1e3", "inf", "1_000", "١٠٠٠", "NaN", 101.5]):
        driver.send("seen", f"v{n}@example.com", fields={"spent": spent})
    assert member_emails(app, "big") == ["v0@example.com", "v1@example.com", "v6@example.com"]


def test_a_due_check_that_fails_is_retried_alone_and_holds_back_no_other(driver, app, clock):
    from sluice.store import due as due_store

    driver.apply(REPEAT_BUYERS)
    for amount in (20, 30):
        driver.send("$purchase", "ada@example.com", details={"amount": amount})
    assert member_emails(app, "repeat_buyers") == ["ada@example.com"]
    with app.db.write() as conn:  # a check whose handler fails, due with Ada's window
        due_store.schedule(conn, [due_store.DueCheck("broken", "k", 1, clock.now())])

    def broken(conn, key, visitor_ids, now):
        raise RuntimeError("this handler fails")

    worker = app.worker(due_handlers={**driver.worker.due_handlers, "broken": broken})
    clock.set(clock.now() + timedelta(days=30, minutes=1))
    worker.run_until_idle()
    assert member_emails(app, "repeat_buyers") == []  # Ada's window was handled
    with app.db.read() as conn:
        assert due_store.next_due(conn) == clock.now() + due_store.RETRY
