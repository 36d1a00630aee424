"""Issue 11's "how it will be checked", end to end, in a real browser (Debian's
Chromium driven by Playwright, against a real `sluice serve` on SQLite with its
embedded worker, no SMTP server: emails go to the outbox), as a person who never
writes YAML:

1. makes a template on /templates, then builds the onboarding flow from /flows/_new
   with the canvas's "+" palette (by keyboard) and the side panels only: a trigger
   with a condition, an email from the template, a wait, an `if` on a tag with steps in
   both branches, a `wait_for` whose timeout branch calls a webhook (a real local HTTP
   server), a field step;
2. tries it on a made-up visitor: the email box shows the subject rendered for them,
   the panel the email, "Send test" puts a test email in the outbox (badge "test",
   not in the flow's stats), "Simulate" with a scripted event highlights the path;
3. creates it, turns it on, sends events through `POST /api/events` and sees the
   sessions counted on the canvas;
4. shortens the live wait (2d → 1m): Save asks first, with the number of sessions that
   wake at once and the emails they then send; Cancel sends nothing; confirmed, the
   worker sends exactly that and the sessions move on;
5. restores the previous version from the Versions tab (a new version, the old text);
6. edits, in the builder, a flow whose YAML has comments (applied through the API):
   the comments stay, in the YAML tab and in `GET /api/flows/{key}` "source".

Screenshots of each state: build/screenshots/scenario-NN-*.png."""

from __future__ import annotations

import time

import pytest

from delivery_servers import WebhookServer
from sluice.service import Sluice
from ui_support import COMMENTED, ROOT, api, logged_in_page, put_flow, serve, wait_for

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
expect.set_options(timeout=15_000)
pytestmark = pytest.mark.slow
SHOTS = ROOT / "build" / "screenshots"
VISITORS = ["ada@example.com", "bo@example.com", "chen@example.com"]


@pytest.fixture(scope="module")
def installation(tmp_path_factory):
    """`sluice serve` without SMTP (emails go to the outbox), allowed to call the local
    webhook server; yields (base URL, Sluice on the same database, webhook server)."""
    database = tmp_path_factory.mktemp("scenario") / "sluice.db"
    with WebhookServer() as hook, serve(database, webhook_allow_private=True) as running:
        base, settings = running
        app = Sluice(settings)
        yield base, app, hook
        app.close()


@pytest.fixture
def page(installation):
    with logged_in_page(installation[0], width=1440, height=1000, timeout=15_000) as page:
        yield page


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(300)  # a frame's srcdoc paints a moment after it is set
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=SHOTS / f"scenario-{name}.png", full_page=True)


def valid(page) -> None:
    expect(page.locator("[data-builder-status]")).to_have_text("Valid")


def add_step(page, where: str, kind: str) -> None:
    """By keyboard: Enter on the "+" `where` ("after welcome", "at the start of else
    of if_activated") opens the palette with the focus on its first kind; ↓ until
    `kind` (its accessible name, "Wait Wait for a time or until a date"), Enter."""
    page.get_by_role("button", name=f"Add a step {where}", exact=True).focus()
    page.keyboard.press("Enter")
    palette = page.get_by_role("group", name=f"Add a step {where}", exact=True)
    wanted = palette.get_by_role("button", name=kind)
    expect(palette.get_by_role("button").first).to_be_focused()
    for _ in range(13):
        if wanted.evaluate("el => el === document.activeElement"):
            break
        page.keyboard.press("ArrowDown")
    expect(wanted).to_be_focused()
    page.keyboard.press("Enter")


def rename(page, new_id: str) -> None:
    """The selected step's id, typed in its panel."""
    page.locator("#panel-id").fill(new_id)
    expect(page.locator(f'[data-step="{new_id}"]')).to_be_visible()


def counts(page) -> dict[str, int]:
    """Sessions at each step, as the live canvas counts them."""
    return page.eval_on_selector_all(
        ".canvas [data-step]",
        "els => Object.fromEntries(els.map(e => [e.dataset.step,"
        " Number(e.querySelector('.count').dataset.count)]))",
    )


def nudges(app: Sluice) -> int:
    return sum(1 for m in app.messages() if m["step"] == "nudge")


def test_a_person_builds_tries_runs_and_changes_the_onboarding_flow(page, installation):
    base, app, hook = installation

    # -- 0. A template, made on the Templates page -----------------------------------
    page.goto("/templates")
    page.get_by_role("link", name="New template").click()
    page.get_by_label("Key").fill("welcome")
    page.get_by_label("Subject").fill('Welcome, {{ visitor.first_name | default: "friend" }}!')
    page.get_by_role("textbox", name="HTML").click()
    page.keyboard.type("<h1>Hi {{ visitor.first_name }}</h1>\n<p>Thanks for signing up.</p>")
    page.get_by_role("button", name="Create template").click()
    expect(page.locator(".notice")).to_have_text("Created the template welcome.")
    shot(page, "00-template")

    # -- 1. Build the flow from an empty one -----------------------------------------
    page.goto("/")
    page.get_by_role("link", name="New flow").click()
    expect(page.locator('[data-step="welcome"]')).to_be_visible()
    page.get_by_role("button", name="Delete welcome").click()
    expect(page.locator(".builder-canvas [data-step]")).to_have_count(0)
    shot(page, "01-empty")

    # The trigger: key, name, and "only when the plan is not enterprise".
    page.locator("[data-trigger]").click()
    page.locator("#trigger-key").fill("onboarding")
    page.locator("#trigger-name").fill("Onboarding")
    page.locator("#trigger-events").fill("$signup")
    panel = page.locator("aside.side-panel")
    panel.get_by_role("button", name="Add a condition").click()
    page.locator("#trigger-condition-0-subject").select_option("event")
    page.locator("#trigger-condition-0-name").fill("plan")
    page.locator("#trigger-condition-0-operator").select_option("is_not")
    page.locator("#trigger-condition-0-value").fill("enterprise")
    expect(page.locator("[data-trigger]")).to_contain_text('if event.details.plan != "enterprise"')
    # (an empty flow has one problem: it needs a step)
    expect(page.locator("[data-builder-status]")).to_have_text("1 problem")
    shot(page, "02-trigger")

    # An email from the template.
    add_step(page, "at the start", "Email Send an email")
    page.locator("#panel-source-template").check()
    expect(page.locator("#panel-template")).to_have_value("welcome")
    # The new step's own subject would hide the template's: picking the template drops it.
    expect(page.locator("#panel-subject")).to_have_value("")
    rename(page, "welcome")
    expect(page.locator('[data-step="welcome"]')).to_contain_text("template welcome")
    valid(page)

    # A wait of two days.
    add_step(page, "after welcome", "Wait Wait for a time or until a date")
    page.locator("#panel-wait-for").fill("2d")
    rename(page, "settle")

    # If the visitor has the tag "activated": tag them engaged; else a nudge email and
    # a wait for the setup whose timeout calls the CRM.
    add_step(page, "after settle", "If / else Branch on a condition")
    page.locator("#panel-condition-0-value").fill("activated")
    rename(page, "activated")
    expect(page.locator('[data-step="activated"]')).to_contain_text(
        'visitor.tags contains "activated"'
    )
    add_step(page, "at the start of then of activated", "Tag Add or remove tags")
    rename(page, "mark_engaged")
    add_step(page, "at the start of else of activated", "Email Send an email")
    page.locator("#panel-subject").fill("Need a hand, {{ visitor.first_name }}?")
    page.locator("#panel-html").fill("<p>Reply and a human will help.</p>")
    rename(page, "nudge")
    add_step(page, "after nudge", "Wait for event Wait until the visitor does something")
    page.locator("#panel-event").fill("completed_setup")
    page.locator("#panel-timeout").fill("3d")
    rename(page, "wait_setup")
    add_step(page, "at the start of on timeout of wait_setup", "Webhook Call an HTTP endpoint")
    page.locator("#panel-url").fill(hook.url("/stalled"))
    rename(page, "tell_crm")

    # Last, a field: when the visitor was onboarded.
    add_step(page, "after activated", "Field Set or remove fields")
    page.locator("#panel-field-set-0-key").fill("onboarded_at")
    page.locator("#panel-field-set-0-value").fill("{{ now }}")
    rename(page, "done")
    valid(page)
    shot(page, "03-built")

    page.get_by_role("tab", name="YAML").click()
    yaml = page.locator(".cm-content")
    expect(yaml).to_contain_text("template: welcome")
    expect(yaml).to_contain_text("on_timeout:")
    shot(page, "04-yaml")
    page.get_by_role("tab", name="Canvas").click()

    # -- 2. See it as a made-up visitor ----------------------------------------------
    page.locator("#tryout-mode-made").check()
    page.locator("#tryout-email").fill("ada@example.com")
    page.get_by_role("button", name="Add field").last.click()
    page.locator("#tryout-fields-0-key").fill("first_name")
    page.locator("#tryout-fields-0-value").fill("Ada")
    expect(page.locator('[data-step="welcome"] .box-summary')).to_have_text("Welcome, Ada!")
    expect(page.locator('[data-step="nudge"] .box-summary')).to_have_text("Need a hand, Ada?")
    page.locator('[data-step="welcome"]').click()
    preview = page.locator(".panel-preview")
    expect(preview.get_by_test_id("preview-subject")).to_have_text("Welcome, Ada!")
    expect(page.frame_locator(".preview-html").locator("h1")).to_have_text("Hi Ada")
    shot(page, "05-preview")

    page.locator("#panel-test-to").fill("me@acme.test")
    page.get_by_role("button", name="Send test").click()
    expect(preview.get_by_role("status")).to_have_text(
        "Sent to me@acme.test into the outbox, marked as a test."
    )

    # Simulate: signs up on the pro plan, completes the setup on day 3.
    page.get_by_role("button", name="Add event 1: detail").click()
    page.locator("#tryout-event-0-details-0-key").fill("plan")
    page.locator("#tryout-event-0-details-0-value").fill("pro")
    page.get_by_role("button", name="Add an event").click()
    page.locator("#tryout-event-1-type").fill("completed_setup")
    page.locator("#tryout-event-1-after").fill("3d")
    page.get_by_role("button", name="Simulate", exact=True).click()
    timeline = page.get_by_role("region", name="Predicted timeline")
    expect(timeline).to_contain_text("Predicted: completed")
    expect(timeline).to_contain_text("Gets the email “Welcome, Ada!”.")
    on_path = page.eval_on_selector_all(
        ".builder-canvas .on-path", "els => els.map(e => e.dataset.step)"
    )
    assert on_path == ["welcome", "settle", "activated", "nudge", "wait_setup", "done"]
    shot(page, "06-simulated")

    # -- 3. Create, turn on, send events, see the sessions ---------------------------
    page.get_by_role("button", name="Create flow").click()
    page.wait_for_url("**/flows/onboarding?tab=build")
    flow = api(base, "GET", "/flows/onboarding").json()
    assert flow["status"] == "off" and flow["version"] == 1
    steps = flow["definition"]["steps"]
    assert [s["id"] for s in steps] == ["welcome", "settle", "activated", "done"]
    assert steps[0]["email"] == {"template": "welcome"}
    assert steps[2]["else"][1]["on_timeout"][0]["webhook"]["url"] == hook.url("/stalled")

    # The test email is in the outbox, marked, and counted nowhere.
    page.goto("/outbox")
    row = page.locator("tr[data-test-email]").first
    expect(row).to_contain_text("Welcome, Ada!")
    expect(row.locator(".badge-test")).to_have_text("test")
    shot(page, "07-outbox-test")
    assert app.messages() == []
    stats = api(base, "GET", "/flows/onboarding/stats").json()
    assert all(s.get("sent", 0) == 0 for s in stats["steps"]), stats

    page.goto("/flows/onboarding")
    page.get_by_role("button", name="Turn on").click()
    expect(page.locator("[data-flow-status]")).to_have_text("on")
    events = [
        {"type": "$signup", "email": e, "details": {"plan": "pro"}, "fields": {"first_name": n}}
        for e, n in zip(VISITORS, ["Ada", "Bo", "Chen"], strict=True)
    ]
    events.append(
        {"type": "$signup", "email": "big@example.com", "details": {"plan": "enterprise"}}
    )
    answer = api(base, "POST", "/events", json={"events": events})
    assert answer.status_code == 200 and answer.json()["accepted"] == 4, answer.text
    sent_at = time.monotonic()
    wait_for(lambda: len(app.messages()) == 3, timeout=30)
    page.reload()
    expect(page.locator('[data-step="settle"] .count')).to_have_text("3")
    assert counts(page) == {
        "welcome": 0, "settle": 3, "activated": 0, "mark_engaged": 0, "nudge": 0,
        "wait_setup": 0, "tell_crm": 0, "done": 0,
    }  # fmt: skip
    shot(page, "08-live")

    # -- 4. Shorten the live wait: warned first, with the numbers --------------------
    # The sessions must have waited longer than the new wait to wake at once.
    time.sleep(max(0.0, 62 - (time.monotonic() - sent_at)))
    page.get_by_role("link", name="Build", exact=True).click()
    page.locator('[data-step="settle"]').click()
    page.locator("#panel-wait-for").fill("1m")
    valid(page)
    # Before saving, beside Save: what the edit would do to the live sessions.
    expect(page.locator("[data-impact]")).to_contain_text("3 wake at once")
    page.get_by_role("button", name="Save", exact=True).click()
    dialog = page.get_by_role("alertdialog", name="Saving sends at once")
    expect(dialog).to_contain_text(
        "Saving wakes 3 sessions at once, which then send 3 emails and 0 webhooks right away."
    )
    expect(dialog).to_contain_text(
        "3 sessions waiting at settle (2d → 1m): 3 wake at once and send "
        "email “Need a hand, {{ visitor.first_name }}?” (nudge: 3, maybe)."
    )
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    shot(page, "09-confirm")
    assert api(base, "GET", "/flows/onboarding").json()["version"] == 1 and nudges(app) == 0

    page.keyboard.press("Enter")  # Cancel, where the focus is
    expect(page.get_by_text("Not saved.")).to_be_visible()
    time.sleep(2)
    assert api(base, "GET", "/flows/onboarding").json()["version"] == 1 and nudges(app) == 0

    page.get_by_role("button", name="Save", exact=True).click()
    dialog.get_by_role("button", name="Save and send").click()
    expect(page.get_by_text("Saved version 2.")).to_be_visible()
    wait_for(lambda: nudges(app) == 3, timeout=30)
    page.goto("/flows/onboarding")
    expect(page.locator('[data-step="wait_setup"] .count')).to_have_text("3")
    api(base, "POST", "/events", json={"type": "completed_setup", "email": VISITORS[0]})
    wait_for(lambda: app.sessions(flow="onboarding", status="completed"), timeout=30)
    page.reload()
    expect(page.locator('[data-step="wait_setup"] .count')).to_have_text("2")
    expect(page.locator('[data-status-count="completed"]')).to_have_text("1")
    shot(page, "10-moved")

    # -- 5. Restore the previous version ---------------------------------------------
    page.get_by_role("link", name="Versions").click()
    page.get_by_role("button", name="Restore v1").click()
    expect(page.locator("[data-restored-text]")).to_contain_text("wait: 2d")
    shot(page, "11-restore")
    page.get_by_role("button", name="Restore v1").click()
    expect(page.locator("tr[data-version='3']")).to_contain_text("current")
    shot(page, "12-restored")
    first = api(base, "GET", "/flows/onboarding/versions/1").json()
    third = api(base, "GET", "/flows/onboarding/versions/3").json()
    assert third["source"] == first["source"] and "wait: 2d" in third["source"]

    # -- 6. A flow written with comments, edited in the builder ----------------------
    put_flow(base, "greeter", COMMENTED)
    page.goto("/flows/greeter?tab=build")
    page.locator('[data-step="welcome"]').click()
    page.locator("#panel-subject").fill("Welcome aboard!")
    expect(page.locator('[data-step="welcome"]')).to_contain_text("Welcome aboard!")
    valid(page)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Saved version 2.")).to_be_visible()
    page.get_by_role("tab", name="YAML").click()
    text = page.locator(".cm-content").inner_text()
    for kept in ("# Greets new sign-ups.", "# every sign-up", "# then a pause", "html: |"):
        assert kept in text
    assert "subject: Welcome aboard!" in text
    shot(page, "13-comments")
    source = api(base, "GET", "/flows/greeter").json()["source"]
    assert source == COMMENTED.replace("subject: Welcome!", "subject: Welcome aboard!")
