"""The visitor profile and the visitor search in a real browser (Chromium against a
real `sluice serve`, as in test_ui_browser.py): a person tags a visitor, sets a field,
unsubscribes them, exports and erases them, stops a session from the Flows tab, reads
their events and emails, and pages through a search; each result is checked on the
page and in the database."""

from __future__ import annotations

import json
import re

import httpx
import pytest

import test_ui_browser as ui
from sluice.api import items
from sluice.definitions.parse import load_documents
from sluice.records import FlowStatus
from sluice.service import VisitorNotFound

pytestmark = pytest.mark.slow
expect, send, shot, wait_for = ui.expect, ui.send, ui.shot, ui.wait_for
# The browser and the server of test_ui_browser.py, started anew for this module.
server, facade, browser, context, page = ui.server, ui.facade, ui.browser, ui.context, ui.page


@pytest.fixture(scope="module")
def seeded(context, facade):
    documents = []
    for path in sorted(ui.EXAMPLES.glob("*.yaml")):
        documents += [(path.name, d) for d in load_documents(path.read_text(), path.name)]
    facade.apply(documents)
    facade.set_flow_status("onboarding", FlowStatus.ON)
    send(facade, "$signup", "ada@example.com", fields={"first_name": "Ada"})
    send(facade, "checkout_started", "ada@example.com", details={"cart_id": "c1", "total": 42})
    wait_for(lambda: facade.messages(email="ada@example.com"))
    return facade


def test_tags_fields_and_subscription_from_the_profile(page, seeded):
    page.goto("/visitors/ada@example.com")
    page.get_by_label("Tag", exact=True).fill("vip")
    page.get_by_role("button", name="Add tag").click()
    expect(page.locator("#tags [data-tag=vip]")).to_be_visible()
    expect(page.locator(".notice")).to_have_text("Tag vip added.")
    assert seeded.visitor("ada@example.com")["tags"] == ["vip"]

    page.get_by_label("Field name").fill("plan")
    page.get_by_label("Value").fill("pro")
    page.get_by_role("button", name="Set field").click()
    expect(page.locator("#fields [data-field=plan] td").first).to_have_text("pro")
    assert seeded.visitor("ada@example.com")["fields"]["plan"] == "pro"

    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.locator("h1 + p .badge-off")).to_contain_text("unsubscribed")
    assert seeded.visitor("ada@example.com")["subscribed"] is False
    shot(page, "30-visitor-actions")
    page.get_by_role("button", name="Resubscribe").click()
    expect(page.locator("h1 + p .badge-on")).to_have_text("subscribed")

    page.get_by_role("button", name="Remove tag vip").click()
    expect(page.locator("#tags [data-tag=vip]")).to_have_count(0)
    page.get_by_role("button", name="Remove field plan").click()
    expect(page.locator("#fields [data-field=plan]")).to_have_count(0)
    visitor = seeded.visitor("ada@example.com")
    assert visitor["tags"] == [] and "plan" not in visitor["fields"] and visitor["subscribed"]

    page.get_by_role("link", name="Events").click()
    first = page.locator("#events tbody tr").first
    expect(first).to_contain_text("$profile_edit")
    expect(first).to_contain_text("by: ui:admin · command: remove_field · field: plan")


def test_bad_input_is_said_on_the_page_and_changes_nothing(page, seeded):
    page.goto("/visitors/ada@example.com")
    before = seeded.visitor("ada@example.com")
    page.get_by_label("Tag", exact=True).fill("   ")
    page.get_by_role("button", name="Add tag").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Tag: must be a non-empty string. Nothing was changed."
    )
    page.get_by_label("Field name").fill("plan")
    page.get_by_label("Value").fill("x" * 2001)
    page.get_by_role("button", name="Set field").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Value: longer than 2,000 characters. Nothing was changed."
    )
    expect(page.get_by_label("Field name")).to_have_value("plan")  # what was typed stays
    assert seeded.visitor("ada@example.com") == before


def test_export_downloads_the_same_json_as_the_api(page, server, seeded):
    page.goto("/visitors/ada@example.com")
    with page.expect_download() as download:
        page.get_by_role("button", name="Export").click()
    assert download.value.suggested_filename == "sluice-visitor-ada@example.com.json"
    exported = json.loads(download.value.path().read_text(encoding="utf-8"))
    api = httpx.get(
        f"{server[0]}/api/visitors/ada@example.com/export",
        headers={"Authorization": f"Bearer {ui.SECRET_KEY}"},
    ).json()
    assert exported == api and exported["email"] == "ada@example.com"


def test_events_are_rows_with_the_json_behind_a_toggle(page, seeded):
    page.goto("/visitors/ada@example.com?tab=events")
    row = page.locator("#events tr", has_text="checkout_started")
    expect(row.locator(".summary")).to_have_text("cart_id: c1 · total: 42")
    json_text = row.locator("pre.json")
    expect(json_text).to_be_hidden()
    row.locator("summary").click()
    expect(json_text).to_be_visible()
    assert json.loads(json_text.inner_text())["details"] == {"cart_id": "c1", "total": 42}
    shot(page, "31-visitor-events")


def test_the_emails_tab_shows_opened_and_clicked(page, seeded):
    page.goto("/visitors/ada@example.com?tab=emails")
    cell = page.locator("#emails [data-engagement]").first
    expect(cell).to_have_text("not opened")
    message = seeded.messages(email="ada@example.com")[0]["idempotency_id"]
    seeded.record_engagement(message, "email_opened", {})
    seeded.record_engagement(message, "email_clicked", {"url": "https://example.com/go"})
    page.reload()
    expect(cell).to_have_text(re.compile(r"opened\s+clicked"))
    shot(page, "32-visitor-emails")


def test_stop_flow_from_the_flows_tab(page, seeded):
    session_id = seeded.sessions(email="ada@example.com", flow="onboarding")[0]["id"]
    page.goto("/visitors/ada@example.com?tab=flows")
    row = page.locator(f"#sessions tr[data-session='{session_id}']")
    page.once("dialog", lambda dialog: dialog.accept())  # the confirmation (Stop Flow asks)
    row.get_by_role("button", name="Stop Flow").click()
    page.wait_for_url("**/visitors/ada@example.com?tab=flows")
    expect(row.locator(".badge").first).to_have_text("stopped")
    expect(row.get_by_role("button", name="Stop Flow")).to_have_count(0)
    assert seeded.session(session_id)["status"] == "stopped"
    assert seeded.session(session_id)["timeline"][-1]["kind"] == "stopped"


def test_erasing_confirms_what_goes_then_the_visitor_is_gone(page, seeded):
    send(seeded, "$signup", "eve@example.com", fields={"first_name": "Eve", "plan": "pro"})
    seeded.audience.run_commands(
        [(0, items.command({"command": "add_tag", "email": "eve@example.com", "query": "vip"}))]
    )
    wait_for(lambda: seeded.messages(email="eve@example.com"))
    page.goto("/visitors/eve@example.com")
    page.get_by_role("link", name="Erase…").click()
    page.wait_for_url("**/visitors/eve@example.com/erase")
    listed = page.locator("#erasure li").all_inner_texts()
    assert listed == [
        "1 event",
        "the timelines of 1 session; the 1 unfinished exit now",
        "1 email",
        "2 fields",
        "1 tag",
    ]
    shot(page, "33-visitor-erase")
    assert seeded.visitor("eve@example.com")  # nothing erased yet
    page.get_by_role("button", name="Erase this visitor").click()
    page.wait_for_url("**/visitors")
    expect(page.locator(".notice")).to_contain_text("eve@example.com was erased")
    with pytest.raises(VisitorNotFound):
        seeded.visitor("eve@example.com")
    page.goto("/visitors/eve@example.com")
    expect(page.locator("main")).to_contain_text("No visitor has the email eve@example.com.")


def test_search_by_part_field_and_tag_with_pages_and_total(page, seeded):
    commands = [
        {
            "command": "add_field",
            "email": f"shopper{n:02}@Store.example",
            "query": {"key": "plan", "value": "gold" if n % 4 == 0 else "basic"},
        }
        for n in range(75)
    ]
    commands += [
        {"command": "add_tag", "email": f"shopper{n:02}@store.example", "query": "loyal"}
        for n in range(0, 75, 5)
    ]
    seeded.audience.run_commands(list(enumerate(items.command(c) for c in commands)))
    page.goto("/visitors")
    page.get_by_label("Email or field:value").fill("STORE")
    page.get_by_role("button", name="Search").click()
    expect(page.locator(".pager").first).to_contain_text("75 visitors, 1–50 shown")
    expect(page.locator("#visitors tbody tr")).to_have_count(50)
    page.get_by_role("link", name="Next →").first.click()
    expect(page.locator("#visitors tbody tr")).to_have_count(25)
    expect(page.locator(".pager").last).to_contain_text("Page 2 of 2")
    page.get_by_role("link", name="← Previous").first.click()
    expect(page.locator("#visitors tbody tr").first).to_contain_text("shopper00@store.example")

    page.get_by_label("Email or field:value").fill("plan:GOLD")
    page.get_by_label("Tag", exact=True).fill("loyal")
    page.get_by_role("button", name="Search").click()
    # Multiples of 4 and of 5 under 75: 0, 20, 40, 60.
    expect(page.locator(".pager").first).to_have_text("4 visitors")
    assert page.locator("#visitors tbody tr td:first-child").all_inner_texts() == [
        f"shopper{n:02}@store.example" for n in (0, 20, 40, 60)
    ]
    shot(page, "34-visitor-search")
