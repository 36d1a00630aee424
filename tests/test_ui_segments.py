# ruff: noqa: F811 -- `sluice`, `driver` and `browser` are test_ui_pages's fixtures
"""The segment pages in-process, on SQLite and PostgreSQL: the list with member
counts, a segment's rules in words, its members a page at a time and its audit log,
the editor's save (refused with its problems, saving nothing) and its live count. The
same in a real browser is in test_ui_browser.py."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from sluice.api.app import create_app
from sluice.store.flows import diff
from sluice.ui.editing import diff_rows, unified_rows
from sluice.ui.segments import NEW_SEGMENT
from test_ui_pages import (
    anonymous,  # noqa: F401 (the fixtures, shared; `browser` is `anonymous` logged in)
    browser,  # noqa: F401
    csrf,
    driver,  # noqa: F401
    sluice,  # noqa: F401
)

VIPS = """\
kind: segment
key: vips
name: VIPs
rules:
  - tag: vip
"""
PROS = """\
kind: segment
key: pros
name: Pro plans
rules:
  - field: plan
    equals: pro   # paying customers
"""
BUYERS = """\
kind: segment
key: buyers
name: Buyers
match: any
rules:
  - tag: vip
  - all:
      - field: plan
        equals: pro
      - event: $purchase
        at_least: 2
        within: 30d
        where: "event.details.amount >= 10"
"""


def text_of(html: str) -> str:
    """The page's text as read: tags out, entities decoded, spaces folded."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def save(client, text: str, key: str | None = None, note: str = ""):
    path = f"/segments/{key}/edit" if key else "/segments/_new"
    return client.post(path, data={"csrf": csrf(client), "definition": text, "note": note})


def preview(client, text: str, key: str = "_new", token: str | None = None):
    headers = {"X-CSRF-Token": csrf(client) if token is None else token}
    return client.post(f"/ui/segments/{key}/preview", content=text.encode(), headers=headers)


def rows(html: str, table: str) -> list[str]:
    """The text of each row of the table `#table`'s body."""
    return [" ".join(row) for row in cells(html, table)]


def cells(html: str, table: str) -> list[list[str]]:
    body = re.search(rf'<table[^>]*id="{table}".*?<tbody>(.*?)</tbody>', html, re.S).group(1)
    return [
        [text_of(cell) for cell in re.findall(r"<td.*?</td>", row, re.S)]
        for row in re.findall(r"<tr.*?</tr>", body, re.S)
    ]


def test_with_no_segment_the_list_says_how_to_make_one(browser):
    page = browser.get("/segments")
    assert page.status_code == 200
    assert '<a href="/segments" class="active" aria-current="page">Segments</a>' in page.text
    assert "No segments yet" in page.text
    assert '<a class="button primary" href="/segments/_new">New segment</a>' in page.text


def test_the_list_shows_each_segment_by_name_with_how_many_are_in_it(browser, driver, sluice):
    sluice.apply_text(VIPS + "---\n" + PROS, "segments.yaml")
    driver.send("$tag", "ada@example.com", details={"tag": "vip"})
    driver.send("$tag", "bob@example.com", details={"tag": "vip"})
    driver.send("signed_up", "cy@example.com", fields={"plan": "pro"})

    found = cells(browser.get("/segments").text, "segments")
    assert [row[:3] for row in found] == [["Pro plans", "pros", "1"], ["VIPs", "vips", "2"]]
    assert all(row[3].endswith("(v1)") for row in found)  # last changed


def test_the_segment_page_says_its_rules_in_words(browser, sluice):
    sluice.apply_text(BUYERS, "segments.yaml")
    page = browser.get("/segments/buyers").text
    assert "A visitor is in this segment when they match any of:" in text_of(page)
    rules = re.search(r'<ul class="rules" id="rules">(.*?)</ul>\s*<details', page, re.S).group(1)
    items = [text_of(item) for item in re.findall(r"<li>([^<]*)", rules)]
    assert items == [
        "has tag vip",
        "all of:",
        'field plan equals "pro"',
        "2 or more $purchase in the last 30 days where event.details.amount >= 10",
    ]
    assert "<li>all of:<ul>" in page  # the group's rules nest under it
    assert "paying customers" not in page
    assert "where: &#34;event.details.amount &gt;= 10&#34;" in page  # the YAML, behind a toggle


def test_members_come_a_page_at_a_time_linking_to_their_profiles(browser, driver, sluice):
    sluice.apply_text(VIPS, "segments.yaml")
    for email in ("ada@example.com", "bob+vip@example.com", "cy@example.com"):
        driver.send("$tag", email, details={"tag": "vip"})

    first = browser.get("/segments/vips?limit=2").text
    assert '<p class="stat-value" data-members>3</p>' in first
    assert [row.split(" ")[0] for row in rows(first, "members")] == [
        "ada@example.com",
        "bob+vip@example.com",
    ]
    assert f'href="/visitors/{quote("bob+vip@example.com", safe="@")}"' in first
    assert "First page" not in first
    next_url = unescape(re.search(r'<a class="button" href="([^"]+)" rel="next">', first).group(1))

    second = browser.get(next_url).text
    assert [row.split(" ")[0] for row in rows(second, "members")] == ["cy@example.com"]
    assert 'rel="next"' not in second
    assert '<a href="/segments/vips?limit=2">First page</a>' in second
    assert browser.get("/segments/vips?limit=0").status_code == 422


def test_a_saved_segment_keeps_an_audit_log_of_who_changed_what_and_why(browser, driver, sluice):
    driver.send("signed_up", "ada@example.com", fields={"plan": "pro"})
    driver.send("signed_up", "bob@example.com", fields={"plan": "team"})

    created = save(browser, PROS, note="paying customers")
    assert created.status_code == 303 and created.headers["location"] == "/segments/pros"
    assert "Created the segment pros." in text_of(browser.get("/segments/pros").text)
    widened = PROS.replace("equals: pro", "one_of: [pro, team]")
    saved = save(browser, widened, key="pros", note="teams pay too")
    assert saved.headers["location"] == "/segments/pros"

    page = browser.get("/segments/pros").text
    assert "Saved version 2." in page
    assert '<p class="stat-value" data-members>2</p>' in page
    changes = re.findall(
        r'<tr data-change="\d+">\s*<td>(.*?)</td>\s*<td[^>]*>.*?</td>\s*<td>(.*?)</td>'
        r"\s*<td>(.*?)</td>.*?<details><summary>(.*?)</summary>",
        page,
        re.S,
    )
    assert changes == [
        ("v2", "ui:admin", "teams pay too", "What changed in v2"),
        ("v1", "ui:admin", "paying customers", "The text of v1"),
    ]
    latest = re.search(r'<tr data-change="2">.*?</details>', page, re.S).group(0)
    assert [text_of(r) for r in re.findall(r'<tr class="diff-removed">.*?</tr>', latest)] == [
        "6 − equals: pro # paying customers"
    ]
    assert [text_of(r) for r in re.findall(r'<tr class="diff-added">.*?</tr>', latest)] == [
        "6 + one_of: [pro, team] # paying customers"
    ]
    assert sluice.segment("pros")["source"] == widened  # kept as typed, comment and all
    assert save(browser, widened, key="pros").headers["location"] == "/segments/pros"
    assert "No change: the text is the same." in browser.get("/segments/pros").text


def test_an_invalid_segment_shows_each_problem_at_its_line_and_saves_nothing(browser, sluice):
    broken = PROS.replace("equals: pro", "at_least: lots")
    page = save(browser, broken)
    assert page.status_code == 422
    assert "line 6 rules[0].at_least expected a number" in text_of(page.text)
    assert "Fix the problems below to count the visitors who match." in page.text
    assert "at_least: lots" in page.text  # the text as typed, to fix
    assert sluice.segments() == []

    unreadable = save(browser, "kind: segment\nrules: [\n")
    assert unreadable.status_code == 422
    assert "line 3 segment YAML syntax error" in text_of(unreadable.text)
    assert sluice.segments() == []


def test_an_edit_keeps_its_key_and_a_new_segment_needs_a_free_one(browser, driver, sluice):
    sluice.apply_text(VIPS, "segments.yaml")
    renamed = save(browser, VIPS.replace("key: vips", "key: bigs"), key="vips")
    assert renamed.status_code == 422
    assert "line 2 key must stay 'vips'" in text_of(renamed.text)
    taken = save(browser, VIPS)
    assert taken.status_code == 422
    assert "key a segment 'vips' exists already" in text_of(taken.text)
    assert [s["version"] for s in sluice.segments()] == [1]


def test_the_new_segment_editor_starts_from_an_example_that_saves(browser, sluice):
    page = browser.get("/segments/_new").text
    assert "# groups: all, any, none" in unescape(page)
    assert 'aria-label="Segment definition (YAML)"' in page
    assert 'role="status" aria-live="polite" data-segment-count' in page
    assert save(browser, NEW_SEGMENT).status_code == 303
    assert [s["key"] for s in sluice.segments()] == ["engaged-pros"]


def test_the_editor_of_a_segment_opens_on_its_text(browser, sluice):
    sluice.apply_text(PROS, "segments.yaml")
    page = browser.get("/segments/pros/edit").text
    assert "equals: pro   # paying customers" in page
    assert "0 visitors match now." in page
    assert browser.get("/segments/nobody/edit").status_code == 404
    assert browser.get("/segments/nobody").status_code == 404


def test_the_live_count_says_how_many_match_or_what_is_wrong(browser, driver, sluice):
    driver.send("$tag", "ada@example.com", details={"tag": "vip"})
    driver.send("$tag", "bob@example.com", details={"tag": "vip"})
    driver.send("signed_up", "cy@example.com")

    assert preview(browser, VIPS).json() == {"members": 2, "problems": []}
    assert preview(browser, VIPS.replace("tag: vip", "subscribed: true")).json()["members"] == 3
    wrong = preview(browser, VIPS.replace("tag: vip", "tag: [vip]")).json()
    assert wrong == {
        "members": None,
        "problems": [{"loc": "rules[0].tag", "msg": "expected a non-empty string", "line": 5}],
    }
    assert sluice.segments() == []  # nothing saved

    assert preview(browser, VIPS, token="forged").status_code == 403
    with TestClient(create_app(sluice)) as stranger:
        assert stranger.post("/ui/segments/_new/preview", content=VIPS).status_code == 401
    sluice.apply_text(VIPS, "segments.yaml")
    renamed = preview(browser, VIPS.replace("key: vips", "key: bigs"), key="vips").json()
    assert renamed["problems"][0]["msg"].startswith("must stay 'vips'")


def test_a_visitor_profile_links_to_their_segments(browser, driver, sluice):
    sluice.apply_text(VIPS + "---\n" + PROS, "segments.yaml")
    driver.send("$tag", "ada@example.com", details={"tag": "vip"})
    page = browser.get("/visitors/ada@example.com").text
    assert '<a class="tag" href="/segments/vips">vips</a>' in page
    assert "/segments/pros" not in page
    driver.send("signed_up", "bob@example.com")
    assert "In no segment." in browser.get("/visitors/bob@example.com").text


@pytest.mark.parametrize(
    "old,new",
    [
        ("a\nb\nc\n", "a\nB\nc\nd\n"),
        ("", "kind: segment\nkey: s\n"),
        ("".join(f"line {i}\n" for i in range(30)), "".join(f"line {i}\n" for i in range(1, 31))),
    ],
)
def test_the_audit_logs_diff_reads_as_the_versions_diff(old, new):
    """A change's stored unified diff gives the rows the version diff of the same texts
    gives (line numbers and all; only the hunk headers are written differently)."""

    def lines(found):
        return [r for r in found if r["kind"] != "hunk"], sum(r["kind"] == "hunk" for r in found)

    assert lines(unified_rows(diff(old or None, new))) == lines(diff_rows(old, new))
