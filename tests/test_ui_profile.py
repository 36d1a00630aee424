"""The visitor profile as a place to act, and finding visitors, page by page on SQLite
and PostgreSQL: each action changes the database as Bento's plain command of the same
name does, is recorded in the visitor's history, starts no flow, and bad input changes
nothing. (The same actions clicked in Chromium are in test_ui_profile_browser.py.)"""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from conftest import Driver
from sluice.api import items
from sluice.api.app import create_app
from sluice.links import email_hash
from sluice.service import Sluice
from sluice.settings import Settings
from sluice.store.schema import suppressions
from test_ui_pages import PASSWORD, csrf, login

SECRET_KEY = "s" + "k" * 48
TAG_FLOW = """\
key: tagged
trigger:
  event: [$tag, $profile_edit, $update_fields, $unsubscribe, $subscribe]
steps:
  - id: hold
    wait: 1d
"""


@pytest.fixture
def sluice(database_url, clock):
    settings = Settings(
        database_url=database_url,
        signing_key="test-signing-key",
        admin_password=PASSWORD,
        secret_key=SECRET_KEY,
    )
    app = Sluice(settings, clock)
    yield app
    app.close()


@pytest.fixture
def driver(sluice, clock) -> Driver:
    return Driver(sluice, clock)


@pytest.fixture
def browser(sluice):
    with TestClient(create_app(sluice), follow_redirects=False) as client:
        login(client)
        yield client


def change(browser, email: str, command: str, name: str = "", value: str = ""):
    token = csrf(browser, f"/visitors/{email}")
    data = {"csrf": token, "command": command, "name": name, "value": value}
    return browser.post(f"/visitors/{email}/change", data=data)


def events_of(driver: Driver, email: str) -> list[dict]:
    return driver.visitor(email)["events"]


def test_tags_fields_and_subscription_change_and_are_recorded(browser, driver):
    driver.apply(TAG_FLOW)
    driver.send("page_viewed", "ada@example.com")
    steps = [
        ("add_tag", "vip", "", "Tag vip added."),
        ("add_field", "plan", "pro", "Field plan set."),
        ("add_field", "seats", "12", "Field seats set."),
        ("add_field", "code", '"007"', "Field code set."),
        ("unsubscribe", "", "", "Unsubscribed"),
    ]
    for command, name, value, notice in steps:
        response = change(browser, "ada@example.com", command, name, value)
        assert response.status_code == 303
        assert response.headers["location"] == "/visitors/ada@example.com"
        page = browser.get("/visitors/ada@example.com").text
        assert notice in unescape(page)
    visitor = driver.visitor("ada@example.com")
    assert visitor["tags"] == ["vip"]
    assert visitor["fields"] == {"plan": "pro", "seats": 12, "code": "007"}
    assert visitor["subscribed"] is False
    page = browser.get("/visitors/ada@example.com").text
    assert 'data-tag="vip"' in page and "unsubscribed" in page and "Resubscribe" in page

    # Each change is in the history, by whom; none started a flow: the flow's trigger
    # names event types, not these changes (SPEC §7).
    recorded = [e["details"] for e in events_of(driver, "ada@example.com")[:5]]
    assert [d["command"] for d in reversed(recorded)] == [s[0] for s in steps]
    assert recorded[-1] == {"command": "add_tag", "tag": "vip", "by": "ui:admin"}
    assert {e["type"] for e in events_of(driver, "ada@example.com")[:5]} == {"$profile_edit"}
    driver.run()
    assert driver.app.sessions(email="ada@example.com") == []

    for command, name in (("remove_tag", "vip"), ("remove_field", "plan"), ("subscribe", "")):
        assert change(browser, "ada@example.com", command, name).status_code == 303
    visitor = driver.visitor("ada@example.com")
    assert visitor["tags"] == [] and "plan" not in visitor["fields"] and visitor["subscribed"]
    # A change that changes nothing is not recorded.
    before = len(events_of(driver, "ada@example.com"))
    change(browser, "ada@example.com", "remove_tag", "vip")
    assert "Nothing to change." in browser.get("/visitors/ada@example.com").text
    assert len(events_of(driver, "ada@example.com")) == before


@pytest.mark.parametrize(
    ("command", "name", "value", "message"),
    [
        ("add_tag", "   ", "", "Tag: must be a non-empty string"),
        ("add_tag", "t" * 201, "", "Tag: longer than 200 characters"),
        ("add_field", "", "pro", "Field name: must be a non-empty string"),
        ("add_field", "f" * 201, "pro", "Field name: longer than 200 characters"),
        ("add_field", "plan", "x" * 2001, "Value: longer than 2,000 characters"),
        ("add_field", "plan", "a\x00b", "Value: text may not contain a NUL character"),
    ],
)
def test_bad_input_is_said_on_the_profile_and_changes_nothing(
    browser, driver, command, name, value, message
):
    driver.send("page_viewed", "ada@example.com")
    before = driver.visitor("ada@example.com")
    response = change(browser, "ada@example.com", command, name, value)
    assert response.status_code == 422
    alert = re.search(r'<div class="alert" role="alert" data-error>(.*?)</div>', response.text)
    assert alert and unescape(alert.group(1)) == f"{message}. Nothing was changed."
    assert driver.visitor("ada@example.com") == before
    # The page answers at the form's address: its tabs still lead to the profile.
    assert 'href="/visitors/ada@example.com?tab=events"' in response.text


def test_a_forged_or_cross_site_change_is_refused(browser, driver):
    driver.send("page_viewed", "ada@example.com")
    data = {"command": "add_tag", "name": "vip"}
    assert browser.post("/visitors/ada@example.com/change", data=data).status_code == 403
    token = csrf(browser, "/visitors/ada@example.com")
    response = browser.post(
        "/visitors/ada@example.com/change",
        data={**data, "csrf": token},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert (
        browser.post("/visitors/ada@example.com/erase", data={"csrf": "forged"}).status_code == 403
    )
    assert driver.visitor("ada@example.com")["tags"] == []


def test_export_downloads_the_apis_document(browser, driver):
    driver.apply_example("nudge.yaml", "onboarding.yaml")
    driver.send("$signup", "ada@example.com", fields={"first_name": "Ada"})
    token = csrf(browser, "/visitors/ada@example.com")
    response = browser.post("/visitors/ada@example.com/export", data={"csrf": token})
    assert response.status_code == 200
    assert response.headers["content-disposition"] == (
        'attachment; filename="sluice-visitor-ada@example.com.json"; '
        "filename*=UTF-8''sluice-visitor-ada@example.com.json"
    )
    api = browser.get(
        "/api/visitors/ada@example.com/export",
        headers={"Authorization": f"Bearer {SECRET_KEY}"},
    )
    assert response.json() == api.json()
    assert response.json()["sessions"][0]["timeline"]


def test_a_visitor_with_a_unicode_domain_is_exported_under_its_own_name(browser, driver):
    driver.send("signed_up", "ünï@пример.рф")
    email = driver.app.visitor("ünï@пример.рф")["email"]
    token = csrf(browser, "/visitors/ada@example.com")
    response = browser.post(f"/visitors/{email}/export", data={"csrf": token})
    assert response.status_code == 200 and response.json()["email"] == email
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="sluice-visitor-')  # ASCII, for all
    assert disposition.endswith(
        f"filename*=UTF-8''{quote('sluice-visitor-' + email + '.json', safe='@')}"
    )


def test_erasing_names_what_goes_then_erases(browser, driver):
    driver.apply_example("nudge.yaml", "onboarding.yaml")
    driver.send("$signup", "ada@example.com", fields={"first_name": "Ada", "plan": "pro"})
    driver.send("page_viewed", "ada@example.com")
    change(browser, "ada@example.com", "add_tag", "vip")
    page = browser.get("/visitors/ada@example.com")
    assert 'href="/visitors/ada@example.com/erase"' in page.text
    confirm = browser.get("/visitors/ada@example.com/erase").text
    counts = dict(re.findall(r'<li data-count="(\w+)">([^<]*)</li>', confirm))
    assert counts["events"] == "3 events"  # $signup, page_viewed, the tag's record
    assert counts["sessions"] == "the timelines of 1 session; the 1 unfinished exit now"
    assert counts["emails"] == "1 email"
    assert counts["fields"] == "2 fields"
    assert counts["tags"] == "1 tag"
    assert driver.visitor("ada@example.com")  # looking changed nothing

    token = csrf(browser, "/visitors/ada@example.com/erase")
    response = browser.post("/visitors/ada@example.com/erase", data={"csrf": token})
    assert response.status_code == 303 and response.headers["location"] == "/visitors"
    assert (
        "ada@example.com was erased; 1 unfinished session exited" in browser.get("/visitors").text
    )
    assert browser.get("/visitors/ada@example.com").status_code == 404
    with driver.app.db.read() as conn:
        hashes = conn.execute(sa.select(suppressions.c.email_hash)).scalars().all()
    assert hashes == [email_hash("ada@example.com")]


def test_stop_flow_from_the_flows_tab_comes_back_to_it(browser, driver):
    driver.apply_example("nudge.yaml", "onboarding.yaml")
    driver.send("$signup", "ada@example.com")
    session_id = driver.app.sessions(email="ada@example.com")[0]["id"]
    page = browser.get("/visitors/ada@example.com?tab=flows").text
    assert f'action="/sessions/{session_id}/stop"' in page
    token = csrf(browser, "/visitors/ada@example.com?tab=flows")
    response = browser.post(
        f"/sessions/{session_id}/stop",
        data={"csrf": token, "next": "/visitors/ada@example.com?tab=flows"},
    )
    assert response.headers["location"] == "/visitors/ada@example.com?tab=flows"
    assert driver.session(session_id)["status"] == "stopped"
    page = browser.get("/visitors/ada@example.com?tab=flows").text
    assert "Session stopped" in page and f'action="/sessions/{session_id}/stop"' not in page
    # Never a redirect to another site.
    driver.app.resume_session(session_id)
    response = browser.post(
        f"/sessions/{session_id}/stop", data={"csrf": token, "next": "//evil.example/"}
    )
    assert response.headers["location"] == "/"


def test_events_read_as_rows_with_their_json_behind_a_toggle(browser, driver):
    details = {"plan": "pro", "note": "n" * 100, "items": [1, 2]}
    driver.send("checkout_started", "ada@example.com", details=details, fields={"city": "Oslo"})
    page = browser.get("/visitors/ada@example.com?tab=events").text
    row = re.search(r'<span class="summary">(.*?)</span>', page).group(1)
    assert unescape(row) == f"items: [1,2] · note: {'n' * 59}… · plan: pro · fields.city: Oslo"
    assert "<details><summary" in page and unescape('"note": "' + "n" * 100) in unescape(page)


def test_the_emails_tab_shows_opened_and_clicked(browser, driver):
    driver.apply_example("nudge.yaml", "onboarding.yaml")
    driver.send("$signup", "ada@example.com", fields={"first_name": "Ada"})
    driver.send("$signup", "bob@example.com", fields={"first_name": "Bob"})
    page = browser.get("/visitors/ada@example.com?tab=emails").text
    assert "not opened" in page or "not tracked" in page
    message = driver.app.messages(email="ada@example.com")[0]["idempotency_id"]
    driver.app.record_engagement(message, "email_opened", {})
    for url in ("https://a.example", "https://b.example", "https://a.example"):
        driver.app.record_engagement(message, "email_clicked", {"url": url})
    cell = re.search(
        r"<td[^>]*data-engagement>(.*?)</td>",
        browser.get("/visitors/ada@example.com?tab=emails").text,
        re.S,
    ).group(1)
    assert re.sub(r"<[^>]+>|\s+", " ", cell).split() == ["opened", "clicked", "2", "links"]
    bob = browser.get("/visitors/bob@example.com?tab=emails").text
    assert ">opened<" not in bob


# -- search ----------------------------------------------------------------------------


def test_search_by_any_part_of_the_email_a_field_and_a_tag_paged(browser, sluice):
    rows = [
        {
            "command": "add_field",
            "email": f"user{n:03}@{'Shop' if n % 2 else 'mail'}.example",
            "query": {"key": "plan", "value": "Pro" if n % 3 == 0 else "free"},
        }
        for n in range(120)
    ]
    rows += [
        {"command": "add_tag", "email": f"user{n:03}@shop.example", "query": "vip"}
        for n in range(1, 120, 10)
    ]
    sluice.audience.run_commands(list(enumerate(items.command(r) for r in rows)))

    def listed(**params):
        page = browser.get("/visitors", params=params).text
        total = int(re.search(r'data-total="(\d+)"', page).group(1)) if "data-total" in page else 0
        return total, re.findall(r'<a class="strong" href="/visitors/([^"]+)"', page), page

    total, emails, page = listed(q="SHOP")
    assert total == 60 and len(emails) == 50 and emails[0] == "user001@shop.example"
    assert "60 visitors, 1–50 shown" in page and 'rel="next"' in page and 'rel="prev"' not in page
    total, emails, page = listed(q="SHOP", page=2)
    assert len(emails) == 10 and emails[-1] == "user119@shop.example" and 'rel="prev"' in page
    assert 'rel="next"' not in page
    total, emails, _ = listed(q="plan:pro")  # the value case-insensitively
    assert total == 40
    total, emails, _ = listed(q="shop plan:pro")
    assert total == 20 and all("shop" in e for e in emails)
    total, emails, _ = listed(q="", tag="vip")
    assert total == 12 and emails[0] == "user001@shop.example"
    total, emails, _ = listed(q="r00", tag="vip")
    assert emails == ["user001@shop.example"]
    # Values the stored JSON text escapes, or holds as they are.
    for key, value in (("note", 'say "hi" \\o/'), ("city", "Zürich"), ("town", "Ärger")):
        sluice.audience.run_commands(
            [
                (
                    0,
                    items.command(
                        {
                            "command": "add_field",
                            "email": "user007@shop.example",
                            "query": {"key": key, "value": value},
                        }
                    ),
                )
            ]
        )
    assert listed(q="note:'say \"hi\" \\o/'")[1] == ["user007@shop.example"]
    assert listed(q="city:Zürich")[1] == ["user007@shop.example"]
    for typed in ("town:Ärger", "town:ärger", "town:ÄRGER"):  # every letter's case, not ASCII's
        assert listed(q=typed)[1] == ["user007@shop.example"], typed
    total, emails, page = listed(q="plan:gold")
    assert total == 0 and "No visitor matches" in page
    total, emails, page = listed(q="%")  # LIKE's wildcards are plain characters
    assert total == 0
    total, emails, page = listed(q="shop", page=9)
    assert "There are only 2 pages of results" in page
    assert browser.get("/visitors", params={"page": "0"}).status_code == 422


def test_a_change_that_a_trigger_names_starts_its_flow_and_says_so(browser, driver):
    driver.apply("key: vip\ntrigger: {tag_added: vip}\nsteps: [{wait: 1d}]")
    driver.app.audience.create_subscriber("ada@example.com")
    assert change(browser, "ada@example.com", "add_tag", "vip").status_code == 303
    page = unescape(browser.get("/visitors/ada@example.com").text)
    assert "Tag vip added. It started 1 flow session: see Flows." in page
    [session] = driver.visitor("ada@example.com")["sessions"]
    assert session["flow"] == "vip"
