"""Email templates in a real browser (headless Chromium against `sluice serve`): the
list shows where each template is used; the template page checks what is typed (a
broken Liquid tag is shown in its part, at its line), renders the email for a sample
visitor (a stored one or one made up), saves versions and shows their diff; a
template that a flow uses cannot be deleted, one that none uses can. A test send
lands in the outbox with a "test" badge. Screenshots go to build/screenshots/."""

from __future__ import annotations

import httpx
import pytest

from sluice.definitions.parse import load_documents
from sluice.service import Sluice
from ui_support import ROOT, SECRET_KEY, logged_in_page, send, serve

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
TIMEOUT = 10_000
expect.set_options(timeout=TIMEOUT)
pytestmark = pytest.mark.slow

SHOTS = ROOT / "build" / "screenshots"
DOCUMENTS = """
kind: template
key: nudge
subject: 'Need a hand, {{ visitor.first_name | default: "friend" }}?'
html: |
  <html><head><style>p.lead { color: #336699; font-size: 18px; }</style></head>
  <body><p class="lead">Hi {{ visitor.first_name }},</p>
  <p>Reply to this email and a human will help.</p></body></html>
---
kind: template
key: spare
subject: Unused
text: Nobody sends me.
---
key: onboarding
trigger: {event: $signup}
steps:
  - id: nudge_email
    email: {template: nudge}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serve(tmp_path_factory.mktemp("templates") / "sluice.db") as running:
        app = Sluice(running[1])
        app.apply([("seed.yaml", d) for d in load_documents(DOCUMENTS, "seed.yaml")], actor="ops")
        send(app, "$visit", "ada@example.com", fields={"first_name": "Ada"})
        app.close()
        yield running


@pytest.fixture(scope="module")
def page(server):
    with logged_in_page(server[0], width=1360, height=900, timeout=TIMEOUT) as page:
        yield page


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    # A frame whose srcdoc was just set has its content before it is painted, and
    # its paint cannot be awaited from inside (it runs no scripts): a moment's grace.
    page.wait_for_timeout(500)
    page.screenshot(path=SHOTS / f"{name}.png", full_page=True)
    frame = page.locator("[data-preview-html]:visible")
    if frame.count():
        # Chromium may leave the frame blank in a capture of the page; a capture of
        # the frame alone shows the rendered email.
        frame.first.screenshot(path=SHOTS / f"{name}-email.png")


def test_the_list_shows_where_each_template_is_used(page):
    page.goto("/")
    page.get_by_role("link", name="Templates").click()
    row = page.locator("tr[data-template=nudge]")
    expect(row.locator("[data-uses]")).to_have_text("onboarding / nudge_email")
    expect(page.locator("tr[data-template=spare] [data-uses]")).to_have_text("no flow")
    expect(page.get_by_role("link", name="New template")).to_be_visible()
    shot(page, "templates-list")


def test_typing_checks_the_template_and_the_preview_renders_for_a_visitor(page):
    page.goto("/templates/nudge")
    preview = page.locator("[data-email-preview]")
    # The page opens with the email rendered for a made-up visitor, CSS inlined.
    expect(preview.locator("[data-preview-subject]")).to_have_text("Need a hand, Jane?")
    frame = page.frame_locator("[data-preview-html]")
    expect(frame.locator("p.lead")).to_have_text("Hi Jane,")
    assert "color: #336699" in frame.locator("p.lead").get_attribute("style")
    expect(preview.locator("[data-preview-text]")).to_contain_text("Reply to this email")

    # A stored visitor, picked by email.
    page.get_by_label("Render for the visitor").fill("ada@example.com")
    expect(preview.locator("[data-preview-subject]")).to_have_text("Need a hand, Ada?")
    expect(preview.locator("[data-preview-who]")).to_have_text(
        "Rendered for the visitor ada@example.com."
    )

    # An `if` never closed, typed on a new last line: shown in the list and at its line.
    html = page.get_by_role("textbox", name="HTML")
    html.click()
    page.keyboard.press("Control+End")
    page.keyboard.type("\n<p>{% if visitor.plan %}pro</p>")
    problems = page.locator("[data-problems]")
    expect(problems).to_contain_text("html")
    expect(problems).to_contain_text("Liquid syntax error at 5:")  # where endif is due
    expect(page.locator("[data-editor-status]")).to_have_text("1 problem")
    expect(page.locator("[data-part=html] .cm-lint-marker-error")).to_have_count(1)
    expect(preview.locator("[data-preview-none]")).to_be_visible()
    shot(page, "template-problem")

    page.keyboard.type("{% endif %}")
    expect(page.locator("[data-editor-status]")).to_have_text("Valid")
    expect(frame.locator("p").last).to_have_text("")  # Ada has no plan
    page.get_by_label("Subject").fill("Hello {{ visitor.first_name }}")
    expect(preview.locator("[data-preview-subject]")).to_have_text("Hello Ada")
    expect(frame.locator("p.lead")).to_have_text("Hi Ada,")
    shot(page, "template-preview")

    page.get_by_role("button", name="Save new version").click()
    expect(page.locator(".notice")).to_have_text("Saved version 2.")
    page.get_by_role("link", name="Versions").click()
    expect(page.locator(".diff-added").first).to_contain_text("Hello {{ visitor.first_name }}")
    expect(page.locator(".diff-removed").first).to_contain_text("Need a hand")
    shot(page, "template-versions")


def test_a_template_in_use_cannot_be_deleted_and_an_unused_one_can(page):
    page.goto("/templates/nudge")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()
    refused = page.locator("[data-refused]")
    expect(refused).to_contain_text("Not deleted: nudge is used by onboarding / nudge_email")
    shot(page, "template-delete-refused")

    page.goto("/templates/spare")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()
    expect(page.locator(".notice")).to_have_text("Deleted the template spare.")
    expect(page.locator("tr[data-template=spare]")).to_have_count(0)


def test_a_new_template_is_made_from_the_page(page):
    page.goto("/templates")
    page.get_by_role("link", name="New template").click()
    page.get_by_label("Key").fill("receipt")
    page.get_by_label("Subject").fill("Your receipt")
    expect(page.locator("[data-preview-subject]")).to_have_text("Your receipt")
    page.get_by_role("button", name="Create template").click()
    expect(page.locator(".notice")).to_have_text("Created the template receipt.")
    expect(page.locator("h1")).to_have_text("receipt")


def test_a_test_send_shows_in_the_outbox_with_a_test_badge(page, server):
    answer = httpx.post(
        f"{server[0]}/api/emails/test",
        headers={"Authorization": f"Bearer {SECRET_KEY}"},
        json={
            "to": "me@acme.test",
            "visitor_email": "ada@example.com",
            "email": {"template": "nudge"},
        },
    )
    assert answer.json()["delivered_to"] == "outbox", answer.text
    page.goto("/outbox")
    row = page.locator("tr[data-test-email]").first
    expect(row).to_contain_text("[Test] Hello Ada")
    expect(row.locator(".badge-test")).to_have_text("test")
    row.locator("a").click()
    view = page.locator("[data-selected-test]")
    expect(view.locator(".badge-test")).to_have_text("test")
    expect(page.frame_locator(".mail-frame").locator("p.lead")).to_have_text("Hi Ada,")
    shot(page, "outbox-test-email")
