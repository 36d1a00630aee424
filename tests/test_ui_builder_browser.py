"""The flow builder in a real browser: headless Chromium (Debian's, driven by
Playwright) against a real `sluice serve` on SQLite. A person opens an example flow's
Build tab, adds a step with "+", moves steps by keyboard, deletes one, sees the YAML
tab say the same, and saves with a note; `GET /api/flows/{key}` shows the new version.
Then a new flow is made and created from `/flows/_new`. Screenshots of each state go
to build/screenshots/."""

from __future__ import annotations

import pytest

from sluice.definitions.parse import load_documents
from sluice.service import Sluice
from ui_support import COMMENTED, EXAMPLES, ROOT, api, logged_in_page, put_flow, serve

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
expect.set_options(timeout=10_000)
pytestmark = pytest.mark.slow
SHOTS = ROOT / "build" / "screenshots"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serve(tmp_path_factory.mktemp("builder") / "sluice.db") as running:
        app = Sluice(running[1])
        documents = []
        for path in sorted(EXAMPLES.glob("*.yaml")):
            documents += [(path.name, d) for d in load_documents(path.read_text(), path.name)]
        app.apply(documents, actor="ops")
        app.close()
        yield running[0]


@pytest.fixture
def page(server):
    with logged_in_page(server, width=1440, height=1000, timeout=10_000) as page:
        yield page


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")  # the top bar sticks where the page scrolled
    page.screenshot(path=SHOTS / f"{name}.png", full_page=True)


def top_level(page) -> list[str]:
    return page.eval_on_selector_all(
        ".builder-canvas > .lane > .node > .box-wrap > [data-step]",
        "els => els.map(e => e.dataset.step)",
    )


def valid(page) -> None:
    expect(page.locator("[data-builder-status]")).to_have_text("Valid")


def test_a_person_edits_an_example_flow_on_the_canvas_and_saves_it(page, server):
    page.goto("/flows/onboarding")
    page.get_by_role("link", name="Build", exact=True).click()
    expect(page.locator('[data-step="welcome"]')).to_be_visible()
    assert top_level(page) == ["welcome", "settle", "activated", "done"]
    valid(page)
    shot(page, "builder-01-opened")

    # By keyboard, "+" after `settle` opens the palette of every kind (the focus on
    # its first); ↓ goes to Tag, Enter adds `tag_engaged` there.
    page.get_by_role("button", name="Add a step after settle").focus()
    page.keyboard.press("Enter")
    palette = page.get_by_role("group", name="Add a step after settle")
    expect(palette.get_by_role("button")).to_have_count(13)
    expect(palette.get_by_role("button", name="Email Send an email")).to_be_focused()
    shot(page, "builder-02-palette")
    for _ in range(5):
        page.keyboard.press("ArrowDown")
    expect(palette.get_by_role("button", name="Tag Add or remove tags")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator('[data-step="tag_engaged"]')).to_be_focused()
    assert top_level(page) == ["welcome", "settle", "tag_engaged", "activated", "done"]
    valid(page)

    # Alt+↑ moves the new step above `settle`, keeping the focus on it.
    page.keyboard.press("Alt+ArrowUp")
    expect(page.locator('[data-step="tag_engaged"]')).to_be_focused()
    assert top_level(page) == ["welcome", "tag_engaged", "settle", "activated", "done"]

    # Move, then the keyboard picks a place: `done` goes to the start of `then`.
    page.get_by_role("button", name="Move done").click()
    expect(page.get_by_role("status").filter(has_text="Moving done")).to_be_visible()
    shot(page, "builder-03-moving")
    target = page.get_by_role("button", name="Move here (at the start of then of activated)")
    expect(page.locator(".slot-move:focus")).to_have_count(1)
    for _ in range(12):
        if target.evaluate("el => el === document.activeElement"):
            break
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(page.locator('[data-step="done"]')).to_be_focused()
    assert top_level(page) == ["welcome", "tag_engaged", "settle", "activated"]
    valid(page)

    # Delete `nudge` from the else branch.
    page.get_by_role("button", name="Delete nudge").click()
    expect(page.locator('[data-step="nudge"]')).to_have_count(0)
    valid(page)

    # A box opens its panel.
    page.locator('[data-step="settle"]').click()
    expect(page.get_by_role("heading", name="Wait · settle")).to_be_visible()
    shot(page, "builder-04-edited")

    # The YAML tab shows the same document.
    page.get_by_role("tab", name="YAML").click()
    yaml = page.locator(".cm-content")
    expect(yaml).to_contain_text("tag_engaged")
    assert "id: nudge" not in yaml.inner_text()
    shot(page, "builder-05-yaml")

    page.get_by_role("textbox", name="Note for this version").fill("built on the canvas")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Saved version 2.")).to_be_visible()
    flow = api(server, "GET", "/flows/onboarding").json()
    assert flow["version"] == 2
    steps = flow["definition"]["steps"]
    assert [s["id"] for s in steps] == ["welcome", "tag_engaged", "settle", "activated"]
    assert steps[3]["then"][0]["id"] == "done"


def test_a_problem_shows_on_its_box_and_the_yaml_tab_edits_the_canvas(page, server):
    page.goto("/flows/trial-ending?tab=build")
    expect(page.locator('[data-step="before_end"]')).to_be_visible()
    page.get_by_role("tab", name="YAML").click()
    page.locator(".cm-content").click()
    page.keyboard.press("Control+End")
    page.keyboard.insert_text("\n  - id: later\n    wait: 2 days\n")
    expect(page.locator("[data-builder-status]")).to_have_text("1 problem")
    page.get_by_role("tab", name="Canvas").click()
    box = page.locator('[data-step="later"]')
    expect(box).to_contain_text("wait 2 days")
    assert "failing" in box.get_attribute("class")
    expect(page.locator(".box-problems")).to_contain_text("invalid duration")
    shot(page, "builder-06-problem")
    # Undo takes the text back as it was.
    page.get_by_role("button", name="Undo").click()
    valid(page)
    expect(page.locator('[data-step="later"]')).to_have_count(0)
    # Typing fast (no pause between keys) keeps every key where it was typed.
    page.get_by_role("tab", name="YAML").click()
    page.locator(".cm-content").click()
    page.keyboard.press("Control+End")
    page.keyboard.type("# Give them a day before we check\n", delay=0)
    expect(page.locator("[data-builder-status]")).to_have_text("Valid")
    typed = page.locator(".cm-content").inner_text()
    assert typed.rstrip("\n").endswith("# Give them a day before we check"), typed[-200:]
    page.get_by_role("button", name="Undo").click()
    valid(page)
    page.get_by_role("tab", name="Canvas").click()

    # Drag and drop: `warn` onto the "+" at the start of `else`.
    page.locator('[data-step="warn"]').drag_to(
        page.get_by_role("button", name="Add a step at the start of else of still_trial")
    )
    valid(page)
    else_ids = page.eval_on_selector_all(
        '[data-step="still_trial"] >> xpath=ancestor::li[1] >> .branch:nth-child(2) [data-step]',
        "els => els.map(e => e.dataset.step)",
    )
    assert else_ids[0] == "warn"


def test_a_new_flow_is_built_and_created(page, server):
    page.goto("/")
    page.get_by_role("link", name="New flow").click()
    expect(page.locator('[data-step="welcome"]')).to_be_visible()
    page.get_by_role("button", name="Add a step after welcome").click()
    palette = page.get_by_role("group", name="Add a step after welcome")
    expect(palette.get_by_role("button").last).to_be_in_viewport(ratio=1)  # not cut off below
    page.get_by_role("button", name="Wait Wait for a time or until a date").click()
    expect(page.locator('[data-step="wait_1d"]')).to_be_focused()
    valid(page)
    shot(page, "builder-07-new")
    page.get_by_role("button", name="Create flow").click()
    page.wait_for_url("**/flows/my-flow?tab=build")
    flow = api(server, "GET", "/flows/my-flow").json()
    assert flow["status"] == "off"
    assert [s["id"] for s in flow["definition"]["steps"]] == ["welcome", "wait_1d"]


def test_the_builder_keeps_the_comments_of_the_yaml(page, server):
    put_flow(server, "greeter", COMMENTED)
    page.goto("/flows/greeter?tab=build")
    page.get_by_role("button", name="Delete pause").click()
    valid(page)
    page.get_by_role("tab", name="YAML").click()
    text = page.locator(".cm-content").inner_text()
    assert "# Greets new sign-ups." in text and "# every sign-up" in text
    assert "html: |" in text
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Saved version 2.")).to_be_visible()
    # The page is that of what was saved: its version and the versions tab.
    expect(page.get_by_text("greeter · version 2 ·")).to_be_visible()
    expect(page.get_by_role("link", name="Versions 2")).to_be_visible()
    assert "# every sign-up" in api(server, "GET", "/flows/greeter").json()["source"]


def test_a_draft_is_kept_apart_from_the_live_version_until_published(page, server):
    """Save draft leaves the live version running; the Build tab opens on the draft
    later; Publish draft makes it the next version."""
    text = COMMENTED.replace("greeter", "drafted").replace("Greeter", "Drafted")
    put_flow(server, "drafted", text)
    page.goto("/flows/drafted?tab=build")
    page.locator('[data-step="welcome"]').click()
    subject = page.get_by_label("Subject", exact=True)
    subject.fill("Welcome, draft!")
    valid(page)
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_text("Draft saved.")).to_be_visible()
    live = api(server, "GET", "/flows/drafted").json()
    assert live["version"] == 1
    assert live["definition"]["steps"][0]["email"]["subject"] == "Welcome!"

    page.goto("/flows/drafted?tab=build")  # later: the builder carries on with the draft
    expect(page.locator("[data-draft-notice]")).to_be_visible()
    shot(page, "builder-draft")
    page.locator('[data-step="welcome"]').click()
    expect(page.get_by_label("Subject", exact=True)).to_have_value("Welcome, draft!")
    page.get_by_role("button", name="Publish draft").click()
    expect(page.get_by_text("Draft published as version 2.")).to_be_visible()
    published = api(server, "GET", "/flows/drafted").json()
    assert published["definition"]["steps"][0]["email"]["subject"] == "Welcome, draft!"
    assert "# every sign-up" in published["source"]
    assert api(server, "GET", "/flows/drafted/draft").status_code == 404


def test_the_tools_of_a_box_beside_another_branch_can_be_clicked(page, server):
    """The ↕ and × of a step in `then` sit where the `else` branch begins: shown, they
    are above it (the else branch covered them), and the fork is drawn, not a glyph."""
    branches = """\
key: sides
trigger: {event: go}
steps:
  - id: check
    if: 'visitor.tags contains "vip"'
    then:
      - id: tag_vip
        tag: {add: [vip-seen]}
    else:
      - id: tell_crm
        webhook: {url: "https://crm.example.com/hook"}
"""
    put_flow(server, "sides", branches)
    page.goto("/flows/sides?tab=build")
    page.locator('[data-step="tag_vip"]').click()
    page.get_by_role("button", name="Delete tag_vip").click()  # fails if covered
    expect(page.locator('[data-step="tag_vip"]')).to_have_count(0)
    valid(page)
    page.locator('[data-step="tell_crm"]').hover()
    fork = page.get_by_role("button", name="Add a failure branch to tell_crm")
    expect(fork.locator("svg")).to_have_count(1)


def test_a_save_over_a_version_saved_meanwhile_is_refused(page, server):
    """Someone saves the flow while this page is open: Save says so and saves nothing
    (If-Match), instead of undoing their change without a word."""
    text = "key: racing\ntrigger: {event: go}\nsteps:\n  - id: pause\n    wait: 2d\n"
    assert put_flow(server, "racing", text)["version"] == 1
    page.goto("/flows/racing?tab=build")
    expect(page.locator('[data-step="pause"]')).to_be_visible()
    theirs = text.replace("wait: 2d", "wait: 3d")
    assert put_flow(server, "racing", theirs)["version"] == 2
    page.locator('[data-step="pause"]').click()
    page.get_by_label("How long").fill("1d")
    valid(page)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text(
        "Not saved: the flow 'racing' is at version 2; this change was made to version 1."
    )
    flow = api(server, "GET", "/flows/racing").json()
    assert (flow["version"], flow["definition"]["steps"][0]["wait"]) == (2, "3d")


def test_a_flow_started_by_leaving_a_segment_is_built_in_the_settings(page, server):
    segment = "kind: segment\nkey: lapsed\nname: Lapsed\nrules: [{tag: lapsed}]\n"
    saved = api(
        server,
        "PUT",
        "/segments/lapsed",
        content=segment,
        headers={"Content-Type": "application/yaml"},
    )
    assert saved.status_code in (200, 201), saved.text
    page.goto("/")
    page.get_by_role("link", name="New flow").click()
    page.locator("[data-trigger]").click()
    page.locator("#trigger-key").fill("winback")
    page.get_by_label("Started when").select_option("segment")
    page.locator("#trigger-segment").fill("lapsed")
    page.get_by_label("When the visitor").select_option("left")
    expect(page.locator("[data-trigger]")).to_contain_text("segment lapsed left")
    valid(page)
    page.get_by_role("button", name="Create flow").click()
    page.wait_for_url("**/flows/winback?tab=build")
    flow = api(server, "GET", "/flows/winback").json()
    assert flow["definition"]["trigger"] == {"segment": {"key": "lapsed", "on": "left"}}
