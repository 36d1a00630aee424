"""The "Why not?" page in a real browser (headless Chromium against `sluice serve`, as
in test_ui_browser.py): from the Flows tab of a visitor's profile, a person asks why a
visitor did not get a flow, and then one of its steps."""

from __future__ import annotations

import pytest

import test_ui_browser as ui
from sluice.definitions.parse import load_documents
from sluice.records import FlowStatus

# The fixtures of the browser tests: a server, Chromium, a logged-in context.
server, facade, browser, context, page = ui.server, ui.facade, ui.browser, ui.context, ui.page
send, shot, wait_for = ui.send, ui.shot, ui.wait_for

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
pytestmark = pytest.mark.slow

FLOWS = """
key: welcome
name: Welcome
entry: once
trigger: {event: signup}
steps:
  - {id: settle, wait: 2d}
  - {id: hello, email: {subject: Hello, html: '<p>Hi</p>'}}
---
key: winback
name: Win back
trigger: {event: churned}
steps:
  - {id: offer, email: {subject: Come back, html: '<p>Hi</p>'}}
"""


def test_why_not_from_the_flows_tab_names_the_blocking_session(page, facade):
    documents = [("flows.yaml", d) for d in load_documents(FLOWS, "flows.yaml")]
    for key in facade.apply(documents).flows:
        facade.set_flow_status(key, FlowStatus.ON)
    send(facade, "signup", "twice@example.com")
    [first] = wait_for(lambda: facade.sessions(email="twice@example.com"))
    send(facade, "signup", "twice@example.com")
    wait_for(lambda: facade.export_visitor("twice@example.com")["trigger_refusals"])

    page.goto("/visitors/twice@example.com?tab=flows")
    shot(page, "visitor-flows-why-not")
    row = page.locator("#why-not tr[data-flow=welcome]")
    row.get_by_role("link", name="Why not?").click()
    answer = page.locator("#explanation")
    expect(answer).to_have_attribute("data-verdict", "entry_rule")
    expect(answer).to_contain_text(f"they already entered once (session #{first['id']},")
    expect(answer.get_by_role("link", name=f"Session #{first['id']}")).to_have_attribute(
        "href", f"/sessions/{first['id']}"
    )
    shot(page, "why-not")

    page.select_option("select[name=step]", "hello")
    page.get_by_role("button", name="Explain").click()
    expect(answer).to_have_attribute("data-verdict", "waiting")
    expect(answer).to_contain_text("has not reached the step yet")

    # a flow the visitor never entered is in the list too
    page.goto("/visitors/twice@example.com?tab=flows")
    page.locator("#why-not tr[data-flow=winback]").get_by_role("link", name="Why not?").click()
    expect(answer).to_contain_text("Never triggered: no churned event has come")
