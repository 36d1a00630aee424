"""Safe edits of a live flow, in a real browser (headless Chromium against a real
`sluice serve` with its embedded worker, on SQLite): while a person shortens a wait on
a flow with waiting sessions, the panel beside the Save button says how many will wake
at once and which email they will send; saving asks for confirmation with those
numbers and saves nothing until given; once confirmed, the worker sends exactly that."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from conftest import Driver
from sluice.clock import FakeClock
from sluice.service import Sluice
from sluice.settings import Settings
from test_ui_accessibility import AXE, SERIOUS
from ui_support import EXAMPLES, ROOT, chromium, log_in, serve, wait_for

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.slow
expect = sync_api.expect
SHOTS = ROOT / "build" / "screenshots"
WAITING = [f"waiting{n}@example.com" for n in range(5)]


@pytest.fixture(scope="module")
def installation(tmp_path_factory):
    """Five sessions that began their 2-day wait an hour ago (set up on a clock an hour
    behind, before the server and its worker start), then `sluice serve` on the same
    database; yields (base URL, Sluice on that database)."""
    database = tmp_path_factory.mktemp("impact") / "sluice.db"
    settings = Settings(database_url=f"sqlite:///{database}", signing_key="k")
    earlier = Sluice(settings, FakeClock(datetime.now(UTC) - timedelta(hours=1)))
    earlier.upgrade()
    driver = Driver(earlier, earlier.clock)
    driver.apply_example("nudge.yaml", "onboarding.yaml")
    for email in WAITING:
        driver.send("$signup", email)
    earlier.close()
    with serve(database) as (base, served):
        app = Sluice(served)
        yield base, app
        app.close()


def nudges(app: Sluice) -> int:
    return sum(1 for m in app.messages() if m["step"] == "nudge")


def test_shortening_a_wait_warns_beside_save_and_sends_only_once_confirmed(installation):
    base, app = installation
    assert {s["step"] for s in app.sessions(flow="onboarding")} == {"settle"}
    text = (EXAMPLES / "onboarding.yaml").read_text().replace("wait: 2d", "wait: 1m")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        context = browser.new_context(base_url=base, viewport={"width": 1360, "height": 900})
        context.set_default_timeout(15_000)
        page = context.new_page()
        log_in(page)
        page.goto("/flows/onboarding?tab=edit")
        page.wait_for_selector(".cm-content")
        panel = page.locator("[data-impact]")
        expect(panel).to_contain_text("No live session is affected by this edit.")
        page.locator(".cm-content").click()
        page.keyboard.press("Control+a")
        page.keyboard.insert_text(text)

        # As typed: the panel beside Save says who wakes at once and what they send.
        warning = (
            "Saving wakes 5 sessions at once, which then send 5 emails and 0 webhooks right away."
        )
        expect(panel).to_contain_text(warning)
        expect(panel).to_contain_text(
            "5 sessions waiting at settle (2d → 1m): 5 wake at once and send "
            "email from template nudge (nudge: 5, maybe)."
        )
        save = page.get_by_role("button", name="Save new version")
        save_box, panel_box = save.bounding_box(), panel.bounding_box()
        assert panel_box["x"] > save_box["x"] + save_box["width"]  # beside it, to the right
        assert abs(panel_box["y"] - save_box["y"]) < 20
        assert panel_box["y"] + panel_box["height"] < 900  # above the fold
        page.screenshot(path=str(SHOTS / "impact-01-typing.png"))

        # Saving asks first, with the same numbers, and saves nothing.
        save.click()
        confirm = page.get_by_role("button", name="Save and send now")
        expect(confirm).to_be_visible()
        expect(page.get_by_role("alert").filter(has_text="Sends at once")).to_contain_text(warning)
        assert app.show_flow("onboarding")["version"] == 1 and nudges(app) == 0
        page.screenshot(path=str(SHOTS / "impact-02-confirm.png"))
        page.add_script_tag(path=str(AXE))
        assert page.evaluate(SERIOUS) == []

        # Confirmed: saved, and the worker does what the report said.
        confirm.click()
        page.wait_for_url("**/flows/onboarding")
        assert app.show_flow("onboarding")["version"] == 2
        wait_for(lambda: nudges(app) == 5, timeout=20)
        wait_for(
            lambda: {s["step"] for s in app.sessions(flow="onboarding")} == {"wait_setup"},
            timeout=20,
        )
        page.screenshot(path=str(SHOTS / "impact-03-saved.png"))
        context.close()
