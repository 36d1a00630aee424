"""The web UI in a real browser: headless Chromium (Debian's, driven by Playwright)
against a real `sluice serve` with its embedded worker, on SQLite. A person logs in,
makes a first flow, reads the flows list and the canvas with its live counts, turns a
flow off and on, types a broken definition, stops and resumes a session from the
visitor's profile, watches a timeline and the activity feed update without a reload,
reads the outbox, and writes a segment by keyboard while its live count follows. Each
page is saved as a screenshot in build/screenshots/."""

from __future__ import annotations

import importlib.util
import re
from datetime import timedelta

import httpx
import pytest

from delivery_servers import WebhookServer
from sluice.definitions.parse import load_documents
from sluice.records import FlowStatus
from sluice.service import Sluice
from sluice.store.broadcasts import NewBroadcast
from test_ui_accessibility import AXE, SERIOUS
from ui_support import (
    EXAMPLES,
    PASSWORD,
    ROOT,
    SECRET_KEY,
    chromium,
    log_in,
    send,
    serve,
    wait_for,
)

sync_api = pytest.importorskip("playwright.sync_api")
TIMEOUT = 10_000

expect = sync_api.expect
expect.set_options(timeout=TIMEOUT)
pytestmark = pytest.mark.slow

SHOTS = ROOT / "build" / "screenshots"
ONBOARDING_STEPS = [
    "welcome",
    "settle",
    "activated",
    "mark_engaged",
    "nudge",
    "wait_setup",
    "tell_crm",
    "done",
]
BROKEN = "key: onboarding\ntrigger:\n  event: $signup\nsteps:\n  - id: settle\n    wait: 2 days\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`sluice serve` on a fresh SQLite file; yields (base URL, settings)."""
    with serve(tmp_path_factory.mktemp("ui") / "sluice.db", webhook_allow_private=True) as running:
        yield running


@pytest.fixture(scope="module")
def facade(server):
    """The same database, in this process, for setting up data and checking it."""
    app = Sluice(server[1])
    yield app
    app.close()


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def context(browser, server):
    """One logged-in browser context for the module (the login is tested on its own)."""
    context = browser.new_context(base_url=server[0], viewport={"width": 1360, "height": 900})
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    log_in(page)
    page.close()
    yield context
    context.close()


@pytest.fixture
def page(context):
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    yield page
    page.close()
    assert errors == [], f"errors in the page's scripts: {errors}"


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=SHOTS / f"{name}.png", full_page=True)


def session_through_api(server, facade: Sluice, session_id: int) -> dict:
    """The session as the API reports it (the facade where the API is not there)."""
    if importlib.util.find_spec("sluice.api.sessions") is None:
        return facade.session(session_id)
    response = httpx.get(
        f"{server[0]}/api/sessions/{session_id}",
        headers={"Authorization": f"Bearer {SECRET_KEY}"},
    )
    response.raise_for_status()
    return response.json()


@pytest.fixture(scope="module")
def seeded(context, facade):
    """After the fresh-install test: every example applied and on, and visitors."""
    documents = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        documents += [(path.name, d) for d in load_documents(path.read_text(), path.name)]
    facade.apply(documents)
    for key in ("onboarding", "abandoned-cart"):
        facade.set_flow_status(key, FlowStatus.ON)
    send(
        facade, "$signup", "ada@example.com", details={"plan": "pro"}, fields={"first_name": "Ada"}
    )
    send(facade, "$signup", "bob@example.com", fields={"first_name": "<b>Bob</b>"})
    send(facade, "checkout_started", "ada@example.com", details={"cart_id": "c1", "items": []})
    wait_for(lambda: len(facade.sessions(status="waiting")) == 3)
    return facade


# -- a fresh install -------------------------------------------------------------------


def test_login_page_and_a_wrong_password(browser, server):
    context = browser.new_context(base_url=server[0], viewport={"width": 1360, "height": 900})
    page = context.new_page()
    page.goto("/outbox")
    assert "/login" in page.url
    shot(page, "01-login")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    assert "Wrong user name or password" in page.inner_text("[role=alert]")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/outbox")
    context.close()


def test_a_fresh_install_makes_a_first_flow_in_one_click(page, facade):
    page.goto("/")
    assert "No flows yet" in page.inner_text("main")
    shot(page, "02-empty-state")
    page.locator("form.example", has_text="Onboarding").get_by_role(
        "button", name="Use this flow"
    ).click()
    page.wait_for_url("**/flows/onboarding")
    assert "Created the flow onboarding" in page.inner_text(".notice")
    assert facade.show_flow("onboarding")["status"] == "off"


# -- flows -----------------------------------------------------------------------------


def test_the_flows_list(page, seeded):
    page.goto("/")
    rows = page.locator("#flows tbody tr")
    assert rows.count() == 3
    onboarding = page.locator('tr[data-flow="onboarding"]')
    assert onboarding.locator("[data-status]").inner_text() == "on"
    expect(onboarding.locator('[data-figure="counts"]')).to_have_text("2 waiting")
    expect(onboarding.locator('[data-figure="entered_24h"]')).to_have_text("2")
    expect(onboarding.locator('[data-figure="conversion"]')).to_have_text("0.0 %")
    expect(onboarding.locator('[data-figure="health"]')).to_have_text("ok")
    cart = page.locator('tr[data-flow="abandoned-cart"]')
    expect(cart.locator('[data-figure="conversion"]')).to_have_text("no goal")
    assert "v1" in onboarding.inner_text()
    assert (
        page.locator('tr[data-flow="trial-ending"]')
        .get_by_role("button", name="Turn on")
        .is_visible()
    )
    shot(page, "03-flows")


def test_the_canvas_shows_every_step_and_its_live_count(page, seeded):
    page.goto("/flows/onboarding")
    for step in ONBOARDING_STEPS:
        box = page.locator(f'[data-step="{step}"]')
        assert box.is_visible(), step
        assert box.locator("[data-count]").count() == 1
    settle = page.locator('[data-step="settle"] [data-count]')
    assert settle.get_attribute("data-count") == "2" and settle.inner_text() == "2"
    expect(page.locator('[data-step="welcome"] [data-stat="sent"] b')).to_have_text("2")
    send(seeded, "$signup", "cy@example.com")  # a new session, while the page is open
    page.wait_for_selector('[data-step="settle"] [data-count="3"]')
    assert page.locator('[data-step="settle"] [data-count]').inner_text() == "3"
    shot(page, "04-canvas")
    page.goto("/flows/abandoned-cart")
    assert page.locator("[data-step]").count() == 8
    shot(page, "04-canvas-branches")


def test_turning_a_flow_off_and_on(page, seeded):
    page.goto("/flows/onboarding")
    page.once("dialog", lambda dialog: dialog.accept())  # "Turn off Onboarding? …"
    page.get_by_role("button", name="Turn off").click()
    page.wait_for_selector("[data-flow-status]:has-text('off')")
    assert seeded.show_flow("onboarding")["status"] == "off"
    page.goto("/visitors/ada@example.com?tab=flows")
    assert "paused" in page.locator("#sessions").inner_text()
    page.goto("/flows/onboarding")
    page.get_by_role("button", name="Turn on").click()
    page.wait_for_selector("[data-flow-status]:has-text('on')")
    assert seeded.show_flow("onboarding")["status"] == "on"


def test_the_editor_shows_a_problem_at_its_line_as_you_type(page, seeded):
    page.goto("/flows/onboarding?tab=edit")
    content = page.locator(".cm-content")
    content.click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(BROKEN)
    page.wait_for_selector(".cm-lint-marker-error")
    assert page.inner_text("[data-editor-status]") == "1 problem"
    marker = page.locator(".cm-gutterElement", has=page.locator(".cm-lint-marker-error"))
    assert marker.inner_text().strip() == ""  # the lint gutter, beside line 6:
    assert page.locator(".cm-lintRange-error").inner_text() == "    wait: 2 days"
    page.hover(".cm-lint-marker-error")
    tooltip = page.wait_for_selector(".cm-tooltip-lint")
    assert "steps[0].wait: invalid duration '2 days'" in tooltip.inner_text()
    assert "line 6" in page.inner_text("[data-problems]")
    shot(page, "05-editor-problem")
    # a valid definition: the preview redraws the canvas of what was typed
    page.locator(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(BROKEN.replace("2 days", "2d"))
    expect(page.locator("[data-preview] [data-step]")).to_have_count(1)
    assert page.locator("[data-preview] [data-step]").get_attribute("data-step") == "settle"
    assert page.inner_text("[data-editor-status]") == "Valid"
    shot(page, "06-editor-preview")
    assert seeded.show_flow("onboarding")["version"] == 1  # nothing saved


def test_versions_and_their_diff(page, seeded):
    definition = seeded.show_flow("onboarding")["definition"]
    definition["steps"][1]["wait"] = "3d"
    seeded.apply([("onboarding.yaml", definition)], actor="test")
    page.goto("/flows/onboarding?tab=versions")
    assert page.locator(".diff-added").inner_text().strip().endswith("wait: 3d")
    shot(page, "07-versions")


# -- visitors and sessions -------------------------------------------------------------


def test_stop_flow_and_resume_from_the_visitors_flows_tab(page, server, seeded):
    page.goto("/visitors/ada@example.com")
    shot(page, "08-visitor-overview")
    page.get_by_role("link", name="Flows").last.click()
    page.wait_for_url("**tab=flows")
    row = page.locator("#sessions tr", has_text="onboarding")
    assert "waiting" in row.inner_text() and "settle" in row.inner_text()
    shot(page, "09-visitor-flows")
    row.locator("a").first.click()
    page.wait_for_url("**/sessions/*")
    session_id = int(page.url.rsplit("/", 1)[1])
    page.once("dialog", lambda dialog: dialog.accept())  # "Stop session #… ?"
    page.get_by_role("button", name="Stop Flow").click()
    page.wait_for_selector("button:has-text('Resume')")
    assert session_through_api(server, seeded, session_id)["status"] == "stopped"
    page.get_by_role("button", name="Resume").click()
    page.wait_for_selector("button:has-text('Stop Flow')")
    session = session_through_api(server, seeded, session_id)
    assert session["status"] == "waiting"
    assert [e["kind"] for e in session["timeline"]][-2:] == ["stopped", "resumed"]
    shot(page, "10-session")


def test_the_timeline_updates_without_a_reload(page, seeded):
    session_id = seeded.sessions(email="bob@example.com")[0]["id"]
    page.goto(f"/sessions/{session_id}")
    page.evaluate("window.notReloaded = true")
    page.wait_for_selector("[data-live-state]:has-text('live')")
    seeded.stop_session(session_id, actor="support")  # someone else, elsewhere
    page.wait_for_selector("[data-timeline] .kind-stopped")
    page.wait_for_selector("button:has-text('Resume')")  # the header followed
    assert page.evaluate("window.notReloaded") is True
    seeded.resume_session(session_id, actor="support")
    page.wait_for_selector("[data-timeline] .kind-resumed")
    assert page.evaluate("window.notReloaded") is True


LIVE = """\
key: live
trigger: {event: live_go}
entry: every_time
steps:
  - {id: pause, wait: 4s}
  - {id: notify, webhook: {url: 'http://127.0.0.1:9/hook', retries: 1}}  # nothing listens there
"""


def with_live_flow(facade: Sluice) -> None:
    if "live" not in {f["key"] for f in facade.list_flows()}:
        facade.apply([("live.yaml", d) for d in load_documents(LIVE, "live.yaml")])
        facade.set_flow_status("live", FlowStatus.ON)


def test_a_session_moving_on_reads_live_in_sentences_and_its_header_follows(page, seeded):
    """The session waits, moves on to a webhook that is refused (nothing listens at
    its port; one attempt) and fails, while the page is open: the new rows arrive as sentences, a "Began step"
    row gives way to the row that tells its outcome, and the header moves along."""
    with_live_flow(seeded)
    send(seeded, "live_go", "liv@example.com")
    sid = wait_for(lambda: seeded.sessions(email="liv@example.com", status="waiting"))[0]["id"]
    page.goto(f"/sessions/{sid}")
    page.evaluate("window.notReloaded = true")
    page.wait_for_selector("[data-live-state]:has-text('live')")
    header = page.locator("[data-session-header]")
    expect(header).to_contain_text("at pause")
    expect(header).to_contain_text("wakes")
    timeline = page.locator("[data-timeline] tbody")
    expect(timeline).to_contain_text("Waiting until")

    failed = timeline.locator("tr", has_text="Failed: webhook failed")
    expect(failed).to_have_count(1, timeout=30_000)
    expect(timeline).to_contain_text("The wait is over")
    expect(timeline).to_contain_text("Webhook to 127.0.0.1 gave up after 1 attempt")
    expect(timeline).not_to_contain_text("Began step")  # folded into its outcome
    expect(header).to_contain_text("at notify")
    expect(header.locator(".badge-failed")).to_have_count(1)
    expect(header).not_to_contain_text("wakes")
    expect(header.get_by_role("button", name="Retry")).to_have_count(1)  # a failed one
    # The raw entries stay behind the toggle, the folded `step` among them.
    gave_up = timeline.locator("tr", has_text="gave up")
    toggle = gave_up.locator("summary")
    expect(toggle).to_contain_text("JSON")  # visibly a control, not only the kind's badge
    toggle.focus()
    page.keyboard.press("Enter")  # reached and opened from the keyboard
    raw = gave_up.locator("pre").inner_text()
    assert '"kind": "step"' in raw and '"kind": "webhook_failed"' in raw
    assert page.evaluate("window.notReloaded") is True
    shot(page, "10b-session-live")


def test_the_activity_feed_filtered_to_errors_stays_filtered_live(page, seeded):
    with_live_flow(seeded)
    page.goto("/activity")
    page.select_option("select[name=flow]", "live")
    page.check("input[name=errors]")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/activity?flow=live&kind=&errors=true")
    page.wait_for_selector("[data-live-state]:has-text('live')")
    send(seeded, "live_go", "err@example.com")
    feed = page.locator("[data-activity] tbody")
    row = feed.locator("tr.fresh", has_text="Failed: webhook failed")
    expect(row).to_have_count(1, timeout=30_000)
    expect(row).to_contain_text("err@example.com")
    expect(feed).not_to_contain_text("Received the event")  # events are not errors
    expect(feed).not_to_contain_text("Waiting until")
    shot(page, "11b-activity-errors")


def test_the_activity_feed_is_live(page, seeded):
    page.goto("/activity")
    page.wait_for_selector("[data-live-state]:has-text('live')")
    send(seeded, "completed_setup", "dee@example.com", details={"note": "<i>html</i>"})
    row = page.wait_for_selector("[data-activity] tr.fresh:has-text('completed_setup')")
    assert "<i>html</i>" in row.inner_text()  # shown as text, not markup
    # A step's row, sent alone while its webhook is attempted, gives way to the outcome.
    with_live_flow(seeded)
    send(seeded, "live_go", "fay@example.com")
    fay = page.locator("[data-activity] tr", has_text="fay@example.com")
    expect(fay.filter(has_text="Failed: webhook failed")).to_have_count(1, timeout=30_000)
    expect(fay.filter(has_text="Webhook to 127.0.0.1 gave up")).to_have_count(1)
    expect(fay.filter(has_text="Began step")).to_have_count(0)
    shot(page, "11-activity")


def test_the_outbox_shows_emails_sandboxed(page, seeded):
    page.goto("/outbox?email=ada@example.com")
    frame = page.locator("iframe.mail-frame")
    assert frame.get_attribute("sandbox") == ""
    assert "Hi Ada" in page.frame_locator("iframe.mail-frame").locator("body").inner_text()
    assert "Message-ID" in page.inner_text(".headers")
    shot(page, "12-outbox")
    page.goto("/outbox")
    assert page.locator("[data-message]").count() == 3
    page.get_by_role("link", name="Welcome, <b>Bob</b>!").click()
    assert "bob@example.com" in page.inner_text(".headers")


def test_search_lists_visitors_and_opens_a_profile(page, seeded):
    page.goto("/")
    page.fill("header input[name=q]", "b")
    page.keyboard.press("Enter")
    page.wait_for_url("**/visitors?q=b")
    assert page.locator("#visitors tbody tr").count() == 1
    shot(page, "13-visitor-search")
    page.fill("header input[name=q]", "bob@example.com")
    page.keyboard.press("Enter")
    page.wait_for_url("**/visitors/bob@example.com")
    assert "<b>Bob</b>" in page.inner_text("main")
    page.get_by_role("link", name="Events").click()
    assert "$signup" in page.inner_text("#events")
    shot(page, "14-visitor-events")
    page.get_by_role("link", name="Emails").click()
    assert "Welcome, <b>Bob</b>!" in page.inner_text("#emails")
    shot(page, "15-visitor-emails")


def test_a_new_flow_from_the_editor(page, seeded):
    page.goto("/")
    page.get_by_role("link", name="New flow").click()
    page.get_by_role("link", name="Write YAML instead").click()
    page.wait_for_selector(".cm-content")
    page.locator(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(
        "key: winback\nname: Win back\ntrigger:\n  event: churned\nsteps:\n"
        "  - id: wait_a_week\n    wait: 7d\n  - id: offer\n    email:\n"
        "      subject: We miss you\n      html: '<p>Come back</p>'\n"
    )
    expect(page.locator("[data-preview] [data-step]")).to_have_count(2)
    shot(page, "16-new-flow")
    page.get_by_role("button", name="Save new version").click()
    page.wait_for_url("**/flows/winback")
    assert seeded.show_flow("winback")["status"] == "off"


# -- segments --------------------------------------------------------------------------

NAMED = """\
kind: segment
key: named
name: Named visitors
rules:
  - field: first_name
    equals: Ada
"""


def test_the_segment_editor_counts_who_matches_as_the_rules_are_typed(page, seeded):
    """With the keyboard alone: New segment, the rules typed, the count following
    them in the live region (or the problem), then Save with a note."""
    anyone_named = NAMED.replace("equals: Ada", "exists: true")
    named = seeded.preview_segment(load_documents(anyone_named, "named.yaml")[0])["members"]
    assert named >= 2  # Ada and Bob
    page.goto("/segments")
    page.get_by_role("link", name="New segment").first.focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/segments/_new")
    editor = page.get_by_role("textbox", name="Segment definition (YAML)")
    editor.focus()
    count = page.get_by_role("status").filter(has_text="match")
    assert count.get_attribute("aria-live") == "polite"

    page.keyboard.press("Control+a")
    page.keyboard.insert_text(NAMED)
    expect(count).to_have_text("1 visitor matches now.")
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(NAMED.replace("equals: Ada", "at_least: lots"))
    expect(count).to_have_text("1 problem: fix it to count the visitors who match.")
    expect(page.locator("[data-problems]")).to_have_text(
        "line 6 rules[0].at_least expected a number"
    )
    page.wait_for_selector(".cm-lint-marker-error")
    shot(page, "segments-editor-problem")
    page.add_script_tag(path=str(AXE))
    assert page.evaluate(SERIOUS) == []

    page.keyboard.press("Control+a")
    page.keyboard.insert_text(anyone_named)
    expect(count).to_have_text(f"{named} visitors match now.")
    expect(page.locator("[data-editor-status]")).to_have_text("Valid")
    shot(page, "segments-editor-count")
    assert seeded.segments() == []  # nothing saved while typing
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Save")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.type("everyone with a name")
    page.keyboard.press("Enter")
    page.wait_for_url("**/segments/named")
    expect(page.locator("#rules")).to_have_text("field first_name is set")
    expect(page.locator("[data-members]")).to_have_text(str(named))
    assert "everyone with a name" in page.inner_text("#changes")
    shot(page, "segments-page")


# -- failures --------------------------------------------------------------------------

CRM = """
key: crm
name: CRM sync
trigger: {event: synced}
steps:
  - id: call
    webhook: {url: 'URL', retries: {attempts: 8, backoff: 1h}}
  - {id: after, tag: {add: [in_crm]}}
"""


def test_a_failing_webhook_is_red_on_the_canvas_and_in_the_flows_list(page, seeded):
    with WebhookServer(answers=[500] * 20) as endpoint:
        documents = load_documents(CRM.replace("URL", endpoint.url()), "crm.yaml")
        seeded.apply([("crm.yaml", d) for d in documents])
        seeded.set_flow_status("crm", FlowStatus.ON)
        page.goto("/flows/crm")
        box = page.locator('[data-step="call"]')
        expect(box.locator('[data-stat="retrying"] b')).to_have_text("0")
        for n in range(3):  # while the page is open
            send(seeded, "synced", f"crm{n}@example.com")
        wait_for(lambda: len(endpoint.requests) >= 3)
        expect(box.locator('[data-stat="retrying"] b')).to_have_text("3")
        expect(box.locator('[data-stat="delivered"] b')).to_have_text("0")
        expect(box).to_have_class(re.compile(r"\bfailing\b"))
        assert "3 deliveries waiting for another attempt" in box.get_attribute("title")
        expect(page.locator('[data-step="after"]')).not_to_have_class(re.compile("failing"))
        shot(page, "17-canvas-failing-webhook")
        page.goto("/")
        health = page.locator('tr[data-flow="crm"] [data-figure="health"]')
        expect(health).to_have_text("1 failing step")
        assert health.locator("a").get_attribute("href") == "/flows/crm"
        shot(page, "18-flows-health")


# -- broadcasts ------------------------------------------------------------------------
# Last in this module: they send emails, which the outbox test above counts.

NEWSLETTER = "kind: segment\nkey: newsletter\nname: Newsletter\nrules: [{tag: news}]\n"


def with_newsletter(facade: Sluice) -> None:
    """A segment of two: Ada and Bob."""
    if "newsletter" not in {s["key"] for s in facade.segments()}:
        facade.apply_text(NEWSLETTER, "newsletter.yaml")
    for email in ("ada@example.com", "bob@example.com"):
        send(facade, "$tag", email, details={"tag": "news"})
    wait_for(lambda: facade.broadcast_audience("newsletter")["members"] == 2)


def test_a_broadcast_composed_and_sent_with_the_keyboard(page, seeded):
    """With the keyboard alone: New broadcast, its name, the segment, the email (sent
    first without a subject, which the page refuses in place), Send, the question of
    how many it goes to answered, and its page then shows it sent, with the email
    rendered for its first member."""
    with_newsletter(seeded)
    page.goto("/broadcasts")
    page.get_by_role("link", name="New broadcast").first.focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/broadcasts/_new")
    page.get_by_role("textbox", name="Name").focus()
    page.keyboard.type("Spring news")
    page.keyboard.press("Tab")
    segment = page.get_by_role("combobox", name="Send to")
    expect(segment).to_be_focused()
    for _ in range(10):  # the arrow keys move through the options
        if segment.input_value() == "newsletter":
            break
        page.keyboard.press("ArrowDown")
    expect(segment).to_have_value("newsletter")
    for _ in range(3):  # the tag filters, then the choice of content (written here)
        page.keyboard.press("Tab")
    expect(page.get_by_role("radio", name="Written here")).to_be_focused()
    page.keyboard.press("Tab")  # the template's select is hidden while not chosen
    expect(page.get_by_role("textbox", name="Subject")).to_be_focused()
    page.keyboard.press("Tab")  # left empty, for now
    expect(page.get_by_role("textbox", name="HTML", exact=True)).to_be_focused()
    page.keyboard.type("<p>Hello {{ visitor.first_name }}</p>")
    for _ in range(4):  # the text part, From, the choice of when (now), per hour
        page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    send_button = page.get_by_role("button", name="Send", exact=True)
    expect(send_button).to_be_focused()
    page.keyboard.press("Enter")

    page.wait_for_selector("[data-problems] li")
    expect(page.locator("[data-problems]")).to_have_text(
        "email.subject: missing required key 'subject'"
    )
    subject = page.get_by_role("textbox", name="Subject")
    expect(subject).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("textbox", name="Name")).to_have_value("Spring news")  # as typed
    shot(page, "broadcasts-compose-problem")
    page.add_script_tag(path=str(AXE))
    assert page.evaluate(SERIOUS) == []
    subject.focus()
    page.keyboard.type("News for {{ visitor.first_name }}")
    page.keyboard.press("Enter")  # the form's first button: Send (which asks first)

    question = page.locator("[data-confirm-send]")
    expect(question).to_be_focused()  # the question is read first
    expect(question).to_contain_text("Send Spring news now to Newsletter?")
    expect(question).to_contain_text("The segment Newsletter has 2 members now")
    assert "Spring news" not in {b["name"] for b in seeded.broadcasts()}  # nothing saved yet
    shot(page, "broadcasts-compose-confirm")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Send to 2 subscribed visitors")).to_be_focused()
    page.keyboard.press("Enter")

    page.wait_for_url(re.compile(r"/broadcasts/\d+$"))
    expect(page.locator(".notice")).to_contain_text("Sending Spring news now")
    expect(page.locator("[data-progress-sentence]")).to_have_text("Sent: 2 queued, 2 sent.")
    expect(page.locator('[data-stat="queued"]')).to_have_text("2")
    expect(page.locator("[data-broadcast-status]")).to_have_text("sent")
    expect(page.locator("[data-preview-subject]")).to_have_text("News for Ada")
    frame = page.frame_locator("iframe.mail-frame").locator("body")
    expect(frame).to_contain_text("Hello Ada")
    shot(page, "broadcast-sent")
    page.goto("/broadcasts")
    expect(page.locator("#broadcasts tbody tr").first).to_contain_text("Spring news")
    shot(page, "broadcasts-list")


def test_a_broadcasts_page_follows_it_without_a_reload(page, seeded):
    """Scheduled a few seconds ahead: the page, open before, says so, then shows it
    sent when the worker has queued it (its sentence in a polite live region)."""
    with_newsletter(seeded)
    news = {"subject": "Soon", "html": "<p>Soon</p>"}
    at = seeded.clock.now() + timedelta(seconds=5)
    found = seeded.create_broadcast(
        NewBroadcast(name="Soon", email=news, segment_key="newsletter"), send=True, send_at=at
    )
    page.goto(f"/broadcasts/{found['id']}")
    page.evaluate("window.notReloaded = true")
    sentence = page.locator("[data-progress-sentence]")
    expect(sentence).to_have_attribute("aria-live", "polite")
    expect(sentence).to_contain_text("Scheduled for")
    expect(page.locator("[data-live-state]")).to_have_text("updating")
    expect(page.get_by_role("button", name="Cancel broadcast")).to_be_visible()
    expect(sentence).to_have_text("Sent: 2 queued, 2 sent.", timeout=30_000)
    expect(page.locator('[data-stat="sent"]')).to_have_text("2")
    expect(page.locator("[data-broadcast-status]")).to_have_text("sent")
    expect(page.get_by_role("button", name="Cancel broadcast")).to_be_hidden()  # nothing to stop
    assert page.evaluate("window.notReloaded") is True
