"""Every page of the web UI for everyone, and on a phone: headless Chromium against a
real `sluice serve` filled with realistic data (`ui_support.seed`: hundreds of
visitors, a webhook answering 500, an email the SMTP server refused, stopped, paused
and failed sessions, an edited flow, a sent broadcast and a draft one).

On every page, at a desktop width and at 390 × 844 (a phone), axe-core (from npm,
ui/frontend) finds no violation of impact serious or critical, and at 390 px nothing
is wider than the screen. Then what a person does with them: the top bar's Menu
button (and the wrapped bar without scripts), the skip link, the confirmations before Turn off and Stop Flow, and the
announcement of a timeline entry."""

from __future__ import annotations

import pytest

from delivery_servers import SmtpServer
from sluice.definitions.parse import load_documents
from sluice.records import FlowStatus
from sluice.service import Sluice
from sluice.store.ingest import IncomingEvent
from ui_support import (
    ROOT,
    chromium,
    hook_answering_500,
    log_in,
    seed,
    serve,
    wait_for,
)

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.slow

AXE = ROOT / "ui" / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
TIMEOUT = 10_000
DESKTOP = {"width": 1360, "height": 900}
PHONE = {"width": 390, "height": 844}
SERIOUS = """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
  .filter((v) => v.impact === "serious" || v.impact === "critical")
  .map((v) => `${v.impact} ${v.id} (${v.help}): ${v.nodes.map((n) => n.target.join(" ")).slice(0, 5).join(", ")}`)"""


@pytest.fixture(scope="module")
def installation(tmp_path_factory):
    """A seeded `sluice serve`: yields (base URL, Sluice on its database, Seeded)."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: `make test` installs it (npm ci in ui/frontend)")
    database = tmp_path_factory.mktemp("a11y") / "sluice.db"
    with (
        hook_answering_500() as hook,
        SmtpServer() as smtp,
        serve(database, smtp_url=smtp.url, webhook_allow_private=True) as (base, settings),
    ):
        app = Sluice(settings)
        yield base, app, seed(app, hook=hook, smtp=smtp)
        app.close()


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


def logged_in(browser, base: str, viewport: dict):
    context = browser.new_context(base_url=base, viewport=viewport)
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    log_in(page)
    return context, page


@pytest.fixture(params=["desktop", "phone"])
def page(request, browser, installation):
    context, page = logged_in(
        browser, installation[0], PHONE if request.param == "phone" else DESKTOP
    )
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    yield page
    context.close()
    assert errors == [], f"errors in the page's scripts: {errors}"


@pytest.fixture
def phone(browser, installation):
    context, page = logged_in(browser, installation[0], PHONE)
    yield page
    context.close()


def pages(seeded) -> list[str]:
    """Every page of the UI, with the seeded data that makes it full."""
    visitor = seeded.onboarded[1]
    return [
        "/",
        "/flows/onboarding",
        "/flows/abandoned-cart",
        "/flows/onboarding?tab=edit",
        "/flows/onboarding?tab=build",
        "/flows/_new?tab=edit",
        "/flows/onboarding?tab=versions&a=1&b=2",
        "/flows/onboarding?tab=versions&show=1",  # a version's canvas beside the current
        "/flows/_new",
        "/visitors?q=a",
        f"/visitors/{visitor}",
        f"/visitors/{visitor}?tab=flows",
        f"/visitors/{visitor}?tab=events",
        f"/visitors/{visitor}?tab=emails",
        f"/visitors/{visitor}/erase",
        f"/why-not?email={visitor}&flow=onboarding",
        "/visitors?q=plan:pro&tag=signed_up",
        f"/sessions/{seeded.stopped_session}",
        f"/sessions/{seeded.paused_sessions[0]}",
        f"/sessions/{seeded.failed_session}",
        f"/sessions/{seeded.retrying_sessions[0]}",
        "/outbox",
        f"/outbox?email={seeded.bounced}&id={seeded.failed_message}",
        "/activity",
        "/activity?errors=true",
        "/templates",
        "/templates/nudge",
        "/templates/nudge?tab=versions",
        "/templates/_new",
        "/segments",
        f"/segments/{seeded.segment}",
        f"/segments/{seeded.segment}/edit",
        "/segments/_new",
        f"/visitors/{seeded.visitors[-2]}",  # a visitor in a segment
        "/broadcasts",
        "/broadcasts/_new",
        f"/broadcasts/{seeded.broadcast}",  # sent: progress, results, the preview
        f"/broadcasts/{seeded.draft_broadcast}",  # a draft: its send form
        "/flows/no-such-flow",  # the error page
    ]


def check(page, path: str) -> list[str]:
    """What is wrong with the page at `path`: axe's serious and critical violations,
    and, on a phone, anything wider than the screen."""
    page.goto(path)
    editors = ("/templates/nudge", "/templates/_new", "/segments/_new")
    if "tab=edit" in path or path in editors or path.endswith("/edit"):
        page.wait_for_selector(".cm-content")
    if "tab=build" in path or path == "/flows/_new":
        page.wait_for_selector(".builder [data-step]")
    page.add_script_tag(path=str(AXE))
    problems = [f"{path}: {v}" for v in page.evaluate(SERIOUS)]
    width = page.viewport_size["width"]
    if width == PHONE["width"]:
        for element in ("documentElement", "body"):
            wide = page.evaluate(f"document.{element}.scrollWidth")
            if wide > width:
                problems.append(f"{path}: {element} is {wide} px wide on a {width} px screen")
    return problems


def test_every_page_passes_axe_and_fits_the_screen(page, installation):
    problems = []
    for path in pages(installation[2]):
        problems += check(page, path)
    assert problems == [], "\n".join(problems)


def test_restore_asks_first_on_a_page_that_passes_axe(browser, installation):
    """Restore… on a version opens the page of what restoring does; it saves nothing
    until confirmed there (so this module's data stays as seeded)."""
    context, page = logged_in(browser, installation[0], DESKTOP)
    try:
        page.goto("/flows/onboarding?tab=versions&show=1")
        page.screenshot(path=ROOT / "build" / "screenshots" / "versions-tab.png", full_page=True)
        page.get_by_role("button", name="Restore v1").click()
        page.wait_for_selector("[data-restore-report]")
        page.screenshot(path=ROOT / "build" / "screenshots" / "restore.png", full_page=True)
        page.add_script_tag(path=str(AXE))
        assert page.evaluate(SERIOUS) == []
        assert page.get_by_role("button", name="Restore v1").is_visible()
    finally:
        context.close()


def test_the_login_page_passes_axe_and_fits_the_screen(browser, installation):
    for viewport in (DESKTOP, PHONE):
        context = browser.new_context(base_url=installation[0], viewport=viewport)
        page = context.new_page()
        problems = check(page, "/login")
        page.fill("input[name=password]", "not the password")
        page.click("button[type=submit]")  # the page again, with its error
        page.add_script_tag(path=str(AXE))
        problems += [f"/login after a wrong password: {v}" for v in page.evaluate(SERIOUS)]
        context.close()
        assert problems == [], "\n".join(problems)


# -- on a phone ------------------------------------------------------------------------


def test_the_top_bar_folds_behind_a_menu_button_on_a_phone(phone):
    phone.goto("/")
    menu = phone.get_by_role("button", name="Menu", exact=True)
    assert menu.get_attribute("aria-expanded") == "false"
    assert not phone.get_by_role("link", name="Outbox").is_visible()
    menu.click()
    assert menu.get_attribute("aria-expanded") == "true"
    phone.get_by_role("link", name="Outbox").click()
    phone.wait_for_url("**/outbox")
    menu = phone.get_by_role("button", name="Menu")
    menu.click()
    phone.keyboard.press("Escape")  # closes it, back on the button
    assert menu.get_attribute("aria-expanded") == "false"
    assert phone.evaluate("document.activeElement.dataset.menuButton") == ""
    menu.click()
    phone.fill("header input[name=q]", "ada.1")
    phone.keyboard.press("Enter")
    phone.wait_for_url("**/visitors?q=ada.1")
    assert phone.locator("#visitors tbody tr").count() >= 1


def test_without_scripts_the_top_bar_wraps_instead(browser, installation):
    context = browser.new_context(
        base_url=installation[0], viewport=PHONE, java_script_enabled=False
    )
    page = context.new_page()
    log_in(page)
    page.goto("/activity")
    assert not page.locator("[data-menu-button]").is_visible()
    assert page.get_by_role("link", name="Outbox").is_visible()
    assert page.locator("header input[name=q]").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    context.close()


def test_the_canvas_and_tables_scroll_in_their_own_box_on_a_phone(phone, installation):
    phone.goto("/flows/abandoned-cart")  # branches side by side: wider than a phone
    canvas = phone.locator(".canvas-card")
    assert canvas.evaluate("box => box.scrollWidth > box.clientWidth")
    assert canvas.get_attribute("tabindex") == "0"  # keyboards can scroll it
    trigger = phone.locator(".canvas .trigger").bounding_box()  # opens on the main lane
    assert trigger["x"] >= 0 and trigger["x"] + trigger["width"] <= PHONE["width"]
    scrolled = "box => { box.scrollLeft = box.scrollWidth; return box.scrollLeft }"
    assert canvas.evaluate(scrolled) == canvas.evaluate("box => box.scrollWidth - box.clientWidth")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    phone.goto("/visitors?q=a")
    table = phone.locator(".card.flush", has=phone.locator("#visitors"))
    assert table.evaluate("box => box.scrollWidth > box.clientWidth")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


# -- for everyone ----------------------------------------------------------------------


def test_the_skip_link_is_the_first_tab_stop_and_skips_the_top_bar(browser, installation):
    context, page = logged_in(browser, installation[0], DESKTOP)
    page.goto("/outbox")
    assert page.get_by_role("link", name="Visitors").is_visible()  # no Menu button here
    assert not page.locator("[data-menu-button]").is_visible()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "content"
    page.keyboard.press("Tab")  # the next stop is in the page, not the top bar
    assert page.evaluate("document.activeElement.closest('main') !== null")
    context.close()


def test_turn_off_asks_first_on_the_list_and_on_the_flow_page(browser, installation):
    base, app, _ = installation
    context, page = logged_in(browser, base, DESKTOP)
    questions = []

    def answer(accept: bool):
        def handle(dialog):
            questions.append(dialog.message)
            if accept:
                dialog.accept()
            else:
                dialog.dismiss()

        page.once("dialog", handle)

    page.goto("/")
    row = page.locator('tr[data-flow="churn-alert"]')
    answer(False)
    row.get_by_role("button", name="Turn off").click()
    assert questions[-1].startswith("Turn off Churn alert?")
    page.reload()
    assert app.show_flow("churn-alert")["status"] == "on"
    answer(True)
    page.locator('tr[data-flow="churn-alert"]').get_by_role("button", name="Turn off").click()
    wait_for(lambda: app.show_flow("churn-alert")["status"] == "off")

    page.goto("/flows/churn-alert")
    page.get_by_role("button", name="Turn on").click()  # nothing to confirm
    page.wait_for_selector("[data-flow-status]:has-text('on')")
    answer(False)
    page.get_by_role("button", name="Turn off").click()
    assert len(questions) == 3
    assert app.show_flow("churn-alert")["status"] == "on"
    answer(True)
    page.get_by_role("button", name="Turn off").click()
    page.wait_for_selector("[data-flow-status]:has-text('off')")
    app.set_flow_status("churn-alert", FlowStatus.ON)
    context.close()


def test_stop_flow_asks_first_and_the_timeline_entry_is_announced(browser, installation):
    base, app, seeded = installation
    session_id = app.sessions(email=seeded.onboarded[2], flow="onboarding")[0]["id"]
    context, page = logged_in(browser, base, DESKTOP)
    page.goto(f"/sessions/{session_id}")
    page.wait_for_selector("[data-live-state]:has-text('live')")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Stop Flow").click()
    assert app.session(session_id)["status"] == "waiting"
    question = []
    page.once("dialog", lambda dialog: (question.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Stop Flow").click()
    page.wait_for_selector("button:has-text('Resume')")
    assert question[0].startswith(f"Stop session #{session_id} of onboarding for ")
    assert app.session(session_id)["status"] == "stopped"
    page.wait_for_selector("[data-live-state]:has-text('live')")
    app.resume_session(session_id, actor="support")  # elsewhere: the page says it
    status = page.locator("[role=status][data-announce]")
    sync_api.expect(status).to_contain_text("resumed", timeout=TIMEOUT)
    context.close()


def test_a_long_name_without_spaces_wraps_on_a_phone(phone, installation):
    """Names are the user's: a flow named with one 300-letter word, a visitor with a
    long address, still fit a 390 px screen."""
    app = installation[1]
    name = "N" + "A" * 300
    text = f"key: long\nname: {name}\ntrigger: {{event: long_go}}\n"
    text += f"steps: [{{id: {'s' * 60}, wait: 1d}}]\n"
    app.apply([("long.yaml", d) for d in load_documents(text, "long.yaml")])
    email = "x" * 60 + "@" + "y" * 60 + ".example"
    app.set_flow_status("long", FlowStatus.ON)
    [session] = app.send([IncomingEvent(type="long_go", email=email)]).sessions_started
    for path in ("/flows/long", f"/visitors/{email}?tab=flows", f"/sessions/{session}"):
        phone.goto(path)
        wide = phone.evaluate("document.documentElement.scrollWidth")
        assert wide <= PHONE["width"], f"{path} is {wide} px wide"
