"""The web UI, page by page, on SQLite and PostgreSQL: what a logged-in person sees
and can do, and what a stranger, a forged form or hostile visitor data cannot do.
(The same flows in a real browser are in test_ui_browser.py.)"""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import timedelta
from html import unescape

import httpx
import pytest
from fastapi.testclient import TestClient

from api_support import served, sse_messages
from conftest import Driver
from sluice import views
from sluice.api.app import create_app
from sluice.records import FlowStatus
from sluice.service import Sluice
from sluice.settings import Settings

PASSWORD = "correct horse battery"
BROKEN = """\
key: onboarding
trigger:
  event: $signup
steps:
  - id: welcome
    email:
      subject: 'Hi {{ visitor.first_name }'
  - id: settle
    wait: 2 days
"""


@pytest.fixture
def sluice(database_url, clock):
    settings = Settings(
        database_url=database_url, signing_key="test-signing-key", admin_password=PASSWORD
    )
    app = Sluice(settings, clock)
    yield app
    app.close()


@pytest.fixture
def driver(sluice, clock) -> Driver:
    return Driver(sluice, clock)


@pytest.fixture
def anonymous(sluice):
    with TestClient(create_app(sluice), follow_redirects=False) as client:
        yield client


@pytest.fixture
def browser(anonymous) -> TestClient:
    """A client logged in as admin."""
    login(anonymous)
    return anonymous


def login(client: TestClient, password: str = PASSWORD, username: str = "admin"):
    page = client.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', page.text).group(1)
    return client.post(
        "/login",
        data={"username": username, "password": password, "login_token": token, "next": "/"},
    )


def csrf(client: TestClient, path: str = "/") -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get(path).text).group(1)


def post(client: TestClient, path: str, **data):
    return client.post(path, data={"csrf": csrf(client), **data})


# -- logging in ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/", "/flows/onboarding", "/visitors/a@b.c", "/sessions/1", "/outbox", "/activity"]
)
def test_every_page_needs_a_login(anonymous, path):
    response = anonymous.get(path)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


def test_json_endpoints_answer_401_without_a_login(anonymous):
    assert anonymous.get("/ui/flows/onboarding/live").status_code == 401


def test_login_with_the_admin_password_sets_a_secure_session_cookie(anonymous):
    response = login(anonymous)
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"].lower()
    assert "sluice_ui=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert "secure" not in cookie  # plain http: a Secure cookie would never come back
    assert anonymous.get("/").status_code == 200


def test_the_stored_password_hash_is_checked_when_none_is_configured(database_url, clock):
    stored = Sluice(Settings(database_url=database_url, signing_key="k"), clock)
    stored.credentials.set_admin_password("stored secret")
    with TestClient(create_app(stored), follow_redirects=False) as client:
        assert login(client, password=PASSWORD).status_code == 401
        assert login(client, password="stored secret").status_code == 303
    stored.close()


def test_over_https_the_cookie_is_secure(sluice):
    with TestClient(
        create_app(sluice), base_url="https://sluice.test", follow_redirects=False
    ) as client:
        response = login(client)
    assert "secure" in response.headers["set-cookie"].lower()


@pytest.mark.parametrize(
    "username,password", [("admin", "wrong"), ("root", PASSWORD), ("admin", "")]
)
def test_a_wrong_login_shows_an_error_inline(anonymous, username, password):
    response = login(anonymous, password=password, username=username)
    assert response.status_code == 401
    assert 'role="alert"' in response.text
    assert "sluice_ui=" not in response.headers.get("set-cookie", "")


def test_password_guessing_is_slowed_down_per_address(anonymous, clock):
    """After ten wrong passwords in fifteen minutes the address waits, and even the
    right password is refused meanwhile; a success clears the count."""
    for _ in range(9):
        assert login(anonymous, password="guess").status_code == 401
    assert login(anonymous).status_code == 303  # a success forgets the failures
    anonymous.cookies.clear()
    for _ in range(10):
        assert login(anonymous, password="guess").status_code == 401
    refused = login(anonymous)
    assert refused.status_code == 429
    assert "Too many failed logins from your address. Try again in 15 minutes." in unescape(
        refused.text
    )
    assert refused.headers["retry-after"] == "900"
    assert "sluice_ui=" not in refused.headers.get("set-cookie", "")
    clock.advance(timedelta(minutes=15, seconds=1))
    assert login(anonymous).status_code == 303


def test_a_forged_cookie_is_not_a_login(anonymous):
    anonymous.cookies.set("sluice_ui", "eyJ1IjoiYWRtaW4ifQ.forged")
    assert anonymous.get("/").status_code == 303


def test_the_login_redirects_back_but_never_to_another_site(anonymous):
    page = anonymous.get("/login?next=//evil.example.com/")
    assert 'name="next" value="/"' in page.text
    assert anonymous.get("/activity").headers["location"] == "/login?next=%2Factivity"


def test_logout_ends_the_session(browser):
    response = post(browser, "/logout")
    assert response.headers["location"] == "/login"
    assert browser.get("/").status_code == 303


def test_a_form_without_its_csrf_token_changes_nothing(browser, driver):
    driver.apply_example("nudge.yaml", "onboarding.yaml")
    for data in ({}, {"csrf": "forged"}):
        response = browser.post("/flows/onboarding/off", data=data)
        assert response.status_code == 403
    assert driver.app.show_flow("onboarding")["status"] == "on"
    assert browser.post("/ui/flows/onboarding/check", content=BROKEN).status_code == 403


# -- flows -----------------------------------------------------------------------------


def test_a_fresh_install_offers_the_examples_and_makes_a_flow_in_one_click(browser, sluice):
    page = browser.get("/")
    assert "No flows yet" in page.text and "Use this flow" in page.text
    response = post(browser, "/flows/examples", file="onboarding.yaml")
    assert response.headers["location"] == "/flows/onboarding"
    flow = sluice.show_flow("onboarding")
    assert flow["status"] == "off" and flow["version"] == 1
    assert "turn it on when ready" in unescape(browser.get("/flows/onboarding").text)


def test_the_flows_list_shows_status_version_sessions_and_conversion(browser, driver):
    driver.apply_example("nudge.yaml", "onboarding.yaml", "abandoned-cart.yaml")
    driver.app.set_flow_status("abandoned-cart", FlowStatus.OFF)
    driver.send("$signup", "ada@example.com")
    driver.send("$signup", "bob@example.com")
    driver.send("$purchase", "bob@example.com")  # the goal
    page = browser.get("/").text
    row = re.search(r'<tr data-flow="onboarding">(.*?)</tr>', page, re.S).group(1)
    assert "badge-on" in row and "v1" in row and "Turn off" in row
    cart = re.search(r'<tr data-flow="abandoned-cart">(.*?)</tr>', page, re.S).group(1)
    assert "badge-off" in cart and "Turn on" in cart
    figures = browser.get("/ui/flows/figures").json()
    assert figures["onboarding"] == {
        "counts": {"waiting": 1, "exited": 1},
        "sessions": 2,
        "entered_24h": 2,
        "converted": 1,
        "conversion": 0.5,
        "conversion_text": "50.0 %",
        "health": {"failing_steps": 0, "failed_24h": 0},
    }
    assert figures["abandoned-cart"]["sessions"] == 0
    assert figures["abandoned-cart"]["conversion"] is None


def test_turning_a_flow_off_and_on(browser, driver):
    driver.apply_example("nudge.yaml", "onboarding.yaml")
    driver.send("$signup", "ada@example.com")
    response = post(browser, "/flows/onboarding/off", next="/")
    assert response.headers["location"] == "/"
    assert driver.app.show_flow("onboarding")["status"] == "off"
    assert "paused where they are" in browser.get("/").text
    assert driver.app.sessions(email="ada@example.com")[0]["paused"]
    post(browser, "/flows/onboarding/on")
    assert driver.app.show_flow("onboarding")["status"] == "on"
    assert post(browser, "/flows/nothing/on").status_code == 404


def test_the_canvas_has_a_box_with_a_count_for_every_step(browser, driver):
    driver.apply_example("nudge.yaml", "onboarding.yaml")
    driver.send("$signup", "ada@example.com")
    driver.send("$signup", "bob@example.com")
    page = browser.get("/flows/onboarding").text
    steps = re.findall(r'data-step="([^"]+)"', page)
    assert steps == [
        "welcome",
        "settle",
        "activated",
        "mark_engaged",
        "nudge",
        "wait_setup",
        "tell_crm",
        "done",
    ]
    counts = dict(re.findall(r'data-step="([^"]+)".*?data-count="(\d+)"', page, re.S))
    assert counts["settle"] == "2" and counts["welcome"] == "0"
    assert "template nudge" in page and "completed_setup, up to 3d" in page
    live = browser.get("/ui/flows/onboarding/live").json()
    assert live["here"] == {"settle": 2}
    assert live["stats"]["welcome"]["sent"] == 2
    assert live["counts"] == {"waiting": 2}


def test_an_unknown_flow_is_a_404_page(browser):
    response = browser.get("/flows/nothing")
    assert response.status_code == 404 and "no flow" in response.text


# -- the editor ------------------------------------------------------------------------


def test_checking_a_broken_definition_lists_every_problem_at_its_line(browser, driver):
    driver.apply_example("nudge.yaml", "onboarding.yaml")
    answer = browser.post(
        "/ui/flows/onboarding/check",
        content=BROKEN,
        headers={"X-CSRF-Token": csrf(browser)},
    ).json()
    problems = {p["loc"]: p for p in answer["problems"]}
    assert problems["steps[0].email.subject"]["line"] == 7
    assert problems["steps[1].wait"]["line"] == 9
    assert "invalid duration" in problems["steps[1].wait"]["msg"]
    assert "canvas" not in answer


def test_a_yaml_syntax_error_is_shown_at_its_line(browser):
    answer = browser.post(
        "/ui/flows/_new/check",
        content="key: x\nsteps: [\n",
        headers={"X-CSRF-Token": csrf(browser)},
    ).json()
    assert answer["problems"][0]["line"] >= 2
    assert "YAML syntax error" in answer["problems"][0]["msg"]


def test_checking_a_valid_definition_previews_its_canvas_and_blast_radius(browser, driver):
    driver.apply_example("nudge.yaml", "onboarding.yaml")
    driver.send("$signup", "ada@example.com")
    text = driver.app.show_flow("onboarding")["definition"]
    text["steps"] = [s for s in text["steps"] if s.get("id") != "settle"]
    from sluice.definitions.source import dump as as_yaml

    answer = browser.post(
        "/ui/flows/onboarding/check", content=as_yaml(text), headers={"X-CSRF-Token": csrf(browser)}
    ).json()
    assert answer["problems"] == []
    assert (
        'data-step="welcome"' in answer["canvas"] and 'data-step="settle"' not in answer["canvas"]
    )
    assert "Saving moves sessions" in answer["canvas"]


def test_saving_from_the_editor_makes_a_new_version_and_a_diff(browser, driver):
    driver.apply_example("nudge.yaml", "onboarding.yaml")
    page = browser.get("/flows/onboarding?tab=edit").text
    text = unescape(
        re.search(r'<textarea name="definition"[^>]*>(.*?)</textarea>', page, re.S).group(1)
    )
    response = post(
        browser, "/flows/onboarding/edit", definition=text.replace("wait: 2d", "wait: 3d")
    )
    assert response.headers["location"] == "/flows/onboarding"
    assert driver.app.show_flow("onboarding")["version"] == 2
    versions = browser.get("/flows/onboarding?tab=versions&a=1&b=2").text
    assert re.search(r'class="diff-removed">.*?wait: 2d', versions, re.S)
    assert re.search(r'class="diff-added">.*?wait: 3d', versions, re.S)
    assert "ui:admin" in versions


def test_a_save_from_an_editor_opened_on_an_older_version_is_refused(browser, driver):
    """Two people open the editor on version 1; the second save would undo the first
    without a word. The editor says so and keeps the text as typed."""
    driver.apply_example("nudge.yaml", "onboarding.yaml")
    page = browser.get("/flows/onboarding?tab=edit").text
    assert '<input type="hidden" name="based_on" value="1">' in page
    text = unescape(
        re.search(r'<textarea name="definition"[^>]*>(.*?)</textarea>', page, re.S).group(1)
    )
    first = text.replace("wait: 2d", "wait: 3d")
    assert (
        post(browser, "/flows/onboarding/edit", definition=first, based_on="1").status_code == 303
    )
    second = text.replace("wait: 2d", "wait: 4d")
    late = post(browser, "/flows/onboarding/edit", definition=second, based_on="1")
    assert late.status_code == 409
    shown = unescape(late.text)
    assert (
        "Not saved: the flow 'onboarding' is at version 2; this change was made to version 1"
        in shown
    )
    assert "wait: 4d" in shown  # the text as typed, to copy
    assert driver.app.show_flow("onboarding")["version"] == 2
    assert driver.app.show_flow("onboarding")["definition"]["steps"][1]["wait"] == "3d"


def test_saving_a_broken_definition_shows_the_problems_and_keeps_the_text(browser, driver):
    driver.apply_example("nudge.yaml", "onboarding.yaml")
    response = post(browser, "/flows/onboarding/edit", definition=BROKEN)
    assert response.status_code == 422
    assert "invalid duration" in response.text and "line 9" in response.text
    assert "wait: 2 days" in response.text
    assert driver.app.show_flow("onboarding")["version"] == 1


def test_a_new_flow_from_the_editor(browser, sluice):
    page = browser.get("/flows/_new?tab=edit").text
    text = unescape(
        re.search(r'<textarea name="definition"[^>]*>(.*?)</textarea>', page, re.S).group(1)
    )
    response = post(browser, "/flows/_new", definition=text)
    assert response.headers["location"] == "/flows/my-flow"
    again = post(browser, "/flows/_new", definition=text)
    assert again.status_code == 422 and "exists already" in again.text


SMALL_FLOW = """\
key: padded
trigger:
  event: $signup
steps:
  - id: settle
    wait: 2d
"""


def padded_to(size: int) -> str:
    """SMALL_FLOW with comment lines making it `size` bytes (ASCII)."""
    line = "# " + "x" * 97 + "\n"
    text = SMALL_FLOW + line * ((size - len(SMALL_FLOW)) // len(line))
    return text + "#" * (size - len(text) - 1) + "\n"


def test_a_definition_just_under_its_limit_is_saved_from_the_editor(browser, sluice):
    """The form itself takes a definition as large as the definition limit allows,
    even percent-encoded (python-multipart alone stops at 1 MiB of encoded bytes)."""
    text = padded_to(1_040_034)
    assert len(text) == 1_040_034
    response = post(browser, "/flows/_new", definition=text)
    assert response.status_code == 303
    assert response.headers["location"] == "/flows/padded"
    assert sluice.show_flow("padded")["version"] == 1


def test_a_definition_over_its_limit_is_refused_in_the_editor(browser, sluice):
    response = post(browser, "/flows/_new", definition=padded_to(1_300_000))
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert "the text is 1.2 MiB; at most 1 MiB can be read at once" in unescape(response.text)
    assert '<textarea name="definition"' in response.text
    assert sluice.list_flows() == []


def test_a_definition_sent_as_a_file_is_a_page_saying_so(browser, sluice):
    response = browser.post(
        "/flows/_new",
        data={"csrf": csrf(browser)},
        files={"definition": ("flow.yaml", SMALL_FLOW.encode(), "application/yaml")},
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert "definition: must be typed in the form, not sent as a file" in unescape(response.text)
    assert sluice.list_flows() == []


def test_a_query_value_the_page_does_not_know_is_a_page_saying_so(browser):
    response = browser.get("/flows/anything?tab=secrets")
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert "tab: String should match pattern" in unescape(response.text)


@pytest.mark.parametrize("session_id", ["abc", "99999999999999999999", "9223372036854775808", "0"])
@pytest.mark.parametrize("method, path", [("GET", ""), ("POST", "/stop"), ("POST", "/resume")])
def test_a_session_id_that_is_not_one_is_the_404_page(browser, session_id, method, path):
    if method == "GET":
        response = browser.get(f"/sessions/{session_id}{path}")
    else:
        response = post(browser, f"/sessions/{session_id}{path}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert f"There is no session {session_id}." in response.text


def test_the_scripts_get_json_for_a_session_id_that_is_not_one(browser):
    for path in ("/ui/sessions/99999999999999999999/stream", "/ui/sessions/abc/stream"):
        response = browser.get(path)
        assert response.status_code == 404
        assert response.json() == {"detail": f"There is no session {path.split('/')[3]}."}


def test_a_visitor_email_too_long_to_be_one_is_the_404_page(browser):
    email = "a" * 400 + "@example.com"
    response = browser.get(f"/visitors/{email}")
    assert response.status_code == 404
    assert f"No visitor has the email {email}." in response.text


# -- visitors and sessions -------------------------------------------------------------


HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_visitor_data_and_event_details_are_escaped_everywhere(browser, driver):
    driver.apply_example("nudge.yaml", "onboarding.yaml")
    driver.send(
        "$signup", "eve@example.com", details={"plan": HOSTILE}, fields={"first_name": HOSTILE}
    )
    session_id = driver.app.sessions(email="eve@example.com")[0]["id"]
    pages = [
        f"/visitors/eve@example.com?tab={tab}" for tab in ("overview", "flows", "events", "emails")
    ]
    pages += [f"/sessions/{session_id}", "/outbox", "/activity", "/visitors?q=eve"]
    for path in pages:
        text = browser.get(path).text
        assert "<script>alert" not in text and "<img src=x" not in text, path
    assert "&lt;script&gt;" in browser.get("/visitors/eve@example.com").text


def test_the_outbox_shows_the_email_sandboxed_with_its_headers(browser, driver):
    driver.apply_example("nudge.yaml", "onboarding.yaml")
    driver.send("$signup", "ada@example.com", fields={"first_name": "Ada"})
    driver.send("$signup", "bob@example.com")
    page = browser.get("/outbox?email=ada@example.com").text
    assert page.count("data-message=") == 1
    frame = re.search(r"<iframe[^>]*>", page).group(0)
    assert 'sandbox=""' in frame and 'srcdoc="&lt;h1&gt;Hi Ada&lt;/h1&gt;' in frame
    assert "Message-ID" in page and "List-Unsubscribe" in page and "Welcome, Ada!" in page
    assert (
        "No emails for nobody@example.com" in browser.get("/outbox?email=nobody@example.com").text
    )


def test_the_profile_flows_tab_lists_every_session_and_marks_paused_ones(browser, driver):
    driver.apply_example("nudge.yaml", "onboarding.yaml", "abandoned-cart.yaml")
    driver.send("$signup", "ada@example.com")
    driver.send("checkout_started", "ada@example.com", details={"cart_id": "c1"})
    driver.app.set_flow_status("onboarding", FlowStatus.OFF)
    page = browser.get("/visitors/ada@example.com?tab=flows").text
    rows = dict(re.findall(r'<tr data-session="(\d+)">(.*?)</tr>', page, re.S))
    assert len(rows) == 2
    onboarding = next(r for r in rows.values() if "onboarding" in r)
    assert "paused" in onboarding and "settle" in onboarding
    cart = next(r for r in rows.values() if "abandoned-cart" in r)
    assert "paused" not in cart and "wait_purchase" in cart


def test_stop_flow_and_resume_from_the_session_page(browser, driver):
    driver.apply_example("nudge.yaml", "onboarding.yaml")
    driver.send("$signup", "ada@example.com")
    session_id = driver.app.sessions(email="ada@example.com")[0]["id"]
    assert "Stop Flow" in browser.get(f"/sessions/{session_id}").text
    response = post(browser, f"/sessions/{session_id}/stop")
    assert response.headers["location"] == f"/sessions/{session_id}"
    assert driver.session(session_id)["status"] == "stopped"
    page = browser.get(f"/sessions/{session_id}").text
    assert "Resume" in page and "Session stopped" in page
    post(browser, f"/sessions/{session_id}/resume")
    assert driver.session(session_id)["status"] == "waiting"
    assert driver.kinds(session_id)[-2:] == ["stopped", "resumed"]


def test_stopping_a_session_that_has_finished_meanwhile_says_so(browser, driver):
    driver.apply_example("nudge.yaml", "onboarding.yaml")
    driver.send("$signup", "ada@example.com")
    session_id = driver.app.sessions(email="ada@example.com")[0]["id"]
    token = csrf(browser, f"/sessions/{session_id}")  # the page, loaded while waiting
    driver.send("$purchase", "ada@example.com")  # the goal: the session exits
    response = browser.post(f"/sessions/{session_id}/stop", data={"csrf": token})
    assert response.status_code == 409
    assert "already exited, so it cannot be stopped" in response.text
    assert "Stop Flow" not in response.text


def test_search_finds_visitors_by_the_start_of_their_email(browser, driver):
    for email in ("ada@example.com", "adam@example.com", "bob@example.com"):
        driver.send("$signup", email)
    page = browser.get("/visitors?q=AD").text
    assert "ada@example.com" in page and "adam@example.com" in page and "bob@" not in page
    exact = browser.get("/visitors?q=bob@example.com")
    assert exact.headers["location"] == "/visitors/bob@example.com"
    assert "No visitor found" in browser.get("/visitors?q=zed").text
    assert browser.get("/visitors/zed@example.com").status_code == 404


def test_search_finds_a_unicode_domain_in_either_form(browser, driver):
    driver.send("$signup", "anna@bücher.example")
    for query in ("anna@BÜCHER.example", "Anna@xn--bcher-kva.example"):
        exact = browser.get("/visitors", params={"q": query})
        assert exact.headers["location"] == "/visitors/anna@xn--bcher-kva.example"
    assert "anna@xn--bcher-kva.example" in browser.get("/visitors?q=anna@xn--b").text
    page = browser.get("/visitors/anna@bücher.example")
    assert page.status_code == 200 and "anna@xn--bcher-kva.example" in page.text


def test_the_activity_page_lists_events_and_session_changes(browser, driver):
    assert "Nothing has happened yet" in browser.get("/activity").text
    driver.apply_example("nudge.yaml", "onboarding.yaml")
    driver.send("$signup", "ada@example.com")
    page = browser.get("/activity").text
    assert "Received the event <code>$signup</code>" in page and "ada@example.com" in page
    assert "Put <em>Welcome, friend!</em> to ada@example.com in the outbox" in page
    assert 'class="page full">' in page  # the whole width
    # the raw JSON behind a toggle that reads as one
    assert '<span class="kind kind-event">event</span> <span class="raw-label">JSON</span>' in page
    assert "Waiting until 2026-01-07 08:00:00 UTC" in " ".join(feed(page))
    [session] = driver.app.sessions(email="ada@example.com")
    driver.app.stop_session(session["id"], actor="ui:admin")
    told = feed(browser.get("/activity").text)
    assert "Was waiting until 2026-01-07 08:00:00 UTC (then stopped)" in told  # no "in 2 days"


def feed(page: str) -> list[str]:
    """The sentences of the Activity feed's rows, as text."""
    return [
        unescape(re.sub(r"<[^>]+>", "", sentence))
        for sentence in re.findall(r'<p class="sentence">(.*?)</p>', page, re.S)
    ]


def test_the_activity_feed_filters_by_flow_kind_and_errors_only(browser, driver):
    driver.apply_example("nudge.yaml", "onboarding.yaml", "abandoned-cart.yaml")
    driver.apply(
        "key: hook\ntrigger: {event: go}\n"
        "steps: [{id: call, webhook: {url: '{{ event.details.url }}'}}]\n"
    )
    driver.send("$signup", "ada@example.com")
    driver.send("checkout_started", "bob@example.com", details={"cart_id": "c1"})
    driver.send("go", "cy@example.com", details={"url": "x"})  # no URL: it fails at once
    asyncio.run(driver.app.dispatcher().run_once())
    driver.run()

    everything = feed(browser.get("/activity").text)
    assert any(s.startswith("Received the event $signup") for s in everything)
    assert not any(s.startswith("Began step") for s in everything)  # folded into their rows
    carts = feed(browser.get("/activity?flow=abandoned-cart").text)
    assert carts and all("$signup" not in s and "Welcome" not in s for s in carts)
    assert any(s.startswith("Entered the flow abandoned-cart") for s in carts)
    sent = feed(browser.get("/activity?kind=email_sent").text)
    assert sent == [
        "Put Welcome, friend! to ada@example.com in the outbox, unsent: no SMTP "
        "server is set up (view email)"
    ]
    events = feed(browser.get("/activity?kind=event").text)
    assert len(events) == 3 and all(s.startswith("Received the event") for s in events)
    errors = browser.get("/activity?errors=true")
    told = feed(errors.text)
    assert len(told) == 2, told
    assert told[0].startswith("Failed: webhook failed: invalid URL 'x'")
    assert told[1].startswith("Webhook to x gave up after 1 attempt: invalid URL 'x'")
    assert 'name="errors" value="true" checked' in errors.text
    stream = re.search(r'data-stream="([^"]+)"', errors.text).group(1)
    assert unescape(stream).endswith("&errors=True")  # the live rows are filtered too
    assert feed(browser.get("/activity?flow=onboarding&errors=true").text) == []
    assert (
        "Nothing matches this filter yet"
        in browser.get("/activity?flow=onboarding&errors=true").text
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("flow=nope", "There is no flow 'nope'."),
        ("kind=sparkles", "'sparkles' is not a kind of activity: choose one from the Kind list."),
        ("flow=" + "x" * 65, "flow: String should have at most 64 characters"),
        ("errors=maybe", "errors: Input should be a valid boolean"),
    ],
)
def test_a_bad_activity_filter_says_what_is_wrong(browser, driver, query, message):
    driver.apply_example("nudge.yaml", "onboarding.yaml")
    page = browser.get(f"/activity?{query}")
    assert page.status_code in (400, 422)
    assert message in unescape(page.text)
    assert "data-stream" not in page.text
    refused = browser.get(f"/ui/activity/stream?{query}")
    assert refused.status_code == 422 and message in refused.json()["detail"]


def test_the_session_page_tells_the_timeline_with_the_raw_data_behind_a_toggle(browser, driver):
    driver.apply_example("nudge.yaml", "onboarding.yaml")
    [sid] = driver.send("$signup", "ada@example.com", fields={"first_name": "Ada"}).sessions_started
    page = browser.get(f"/sessions/{sid}").text
    told = feed(page)
    assert told[1:] == [
        "Put Welcome, Ada! to ada@example.com in the outbox, unsent: no SMTP server is set up "
        "(view email)",
        "Waiting until 2026-01-07 08:00:00 UTC (in 2 days)",
    ]
    assert page.count('<details class="raw">') == 3  # three lines; the `step` rows folded
    assert page.count("&#34;kind&#34;: &#34;step&#34;") == 2  # yet in the raw data
    assert 'aria-live="polite"' in page
    header = re.search(r"<div class=\"session-head\".*?</p>", page, re.S).group(0)
    assert "wakes" in header and "in 2 days" in header and "at <code>settle</code>" in header
    post(browser, f"/sessions/{sid}/stop")
    stopped = browser.get(f"/sessions/{sid}").text
    header = re.search(r"<div class=\"session-head\".*?</p>", stopped, re.S).group(0)
    assert "wakes" not in header and "in 2 days" not in header  # a stopped session sleeps
    assert feed(stopped)[-2:] == [
        "Was waiting until 2026-01-07 08:00:00 UTC (then stopped)",  # nor in its timeline
        "Stopped by ui:admin; it stays here until resumed",
    ]


def test_the_editor_check_refuses_definitions_beyond_the_limits_at_their_line(browser):
    laughs = (
        "key: laughs\ntrigger: {event: go}\n"
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
        + "".join(
            f"{b}: &{b} [{','.join([f'*{a}'] * 9)}]\n"
            for a, b in zip("abcdefgh", "bcdefghi", strict=True)
        )
        + "steps: [{tag: {add: [*i]}}]\n"
    )
    flow = "key: limits\ntrigger: {event: go}\nsteps:\n  - wait: 1d\n"
    conditions = flow + "  - if: '" + "(" * 500 + "visitor.vip" + ")" * 500 + "'\n    then: []\n"
    cases = [
        (laughs, "YAML anchor or alias at 3:4", 3),
        (flow + "x: " + "[" * 500 + "]" * 500 + "\n", "YAML nested more than 64 levels deep", 5),
        (conditions, "Liquid syntax error at 1:51: nested more than 50 levels deep", 5),
        (flow + "  - wait: 900000000d\n", "duration '900000000d' is too long", 5),
        (flow + "  - tag: {add: [a]}\n" * 80_000, "at most 1 MiB can be read at once", 1),
    ]
    started = time.perf_counter()
    for text, message, line in cases:
        answer = browser.post(
            "/ui/flows/_new/check", content=text, headers={"X-CSRF-Token": csrf(browser)}
        )
        assert answer.status_code == 200
        [problem] = answer.json()["problems"]
        assert message in problem["msg"] and problem["line"] == line
        assert "canvas" not in answer.json()
    assert time.perf_counter() - started < 5  # five refusals; one took 50 s before


def first_message(app: Sluice, browser: TestClient, path: str) -> dict:
    """The first message of one of the pages' live streams, over a real connection."""
    cookies = {"sluice_ui": browser.cookies["sluice_ui"]}
    with (
        served(create_app(app)) as url,
        httpx.Client(base_url=url, cookies=cookies, timeout=10) as client,
        client.stream("GET", path) as response,
    ):
        assert response.status_code == 200
        message = next(sse_messages(response.iter_lines()))
    return {**message, "data": json.loads(message["data"])}


def test_the_live_streams_send_sentences_and_a_step_shown_alone_gives_way(browser, driver):
    """The page showed a step that nothing had followed ("Began step"); its outcome,
    written later, comes as the row that replaces it, with the session's header."""
    driver.apply(
        "key: hook\ntrigger: {event: go}\n"
        "steps: [{id: call, webhook: {url: '{{ event.details.url }}'}}]\n"
    )
    [sid] = driver.send("go", "cy@example.com", details={"url": "x"}).sessions_started
    asyncio.run(driver.app.dispatcher().run_once())
    driver.run()
    with driver.app.db.read() as conn:
        ids = {entry["kind"]: i for i, entry in views.timeline_since(conn, sid, 0)}
    step = ids["step"]
    message = first_message(driver.app, browser, f"/ui/sessions/{sid}/stream?after={step}")
    assert message["event"] == "timeline" and message["id"] == str(ids["failed"])
    rows = message["data"]["rows"]
    assert f'data-entry="{ids["webhook_failed"]}" data-replaces="{step}"' in rows
    assert feed(rows)[0].startswith("Webhook to x gave up after 1 attempt")
    assert "badge-failed" in message["data"]["header"]

    events = driver.app.visitor("cy@example.com")["events"]
    after = f"e{events[0]['id']}.t{step}"
    message = first_message(driver.app, browser, f"/ui/activity/stream?after={after}")
    assert message["event"] == "rows"
    rows = message["data"]["rows"]
    assert f'data-item="t{ids["webhook_failed"]}" data-replaces="t{step}"' in rows
    assert feed(rows) == [
        "Failed: webhook failed: invalid URL 'x': not an absolute http:// or https:// URL",
        "Webhook to x gave up after 1 attempt: invalid URL 'x': not an absolute http:// or "
        "https:// URL",
    ]


def test_a_failed_session_is_retried_from_its_page(browser, driver):
    """A failed session's page offers Retry (SPEC §3.4 `retry`): once what made it fail
    is mended (here the visitor's data), the step it failed at runs again."""
    driver.apply(
        "key: greet\ntrigger: {event: go}\nsteps:\n"
        "  - {id: hello, tag: {add: ['{% for i in (1..visitor.fields.n) %}x{% endfor %}']}}\n"
    )
    [sid] = driver.send("go", "bob@example.com", fields={"n": 100000}).sessions_started
    assert driver.session(sid)["status"] == "failed"  # the loop limit
    page = browser.get(f"/sessions/{sid}").text
    assert f'action="/sessions/{sid}/retry"' in page and ">Retry<" in page
    driver.send("mended", "bob@example.com", fields={"n": 2})
    response = post(browser, f"/sessions/{sid}/retry")
    assert response.status_code == 303
    driver.run()
    assert driver.session(sid)["status"] == "completed"
    assert "retried" in driver.kinds(sid)
    again = post(browser, f"/sessions/{sid}/retry")  # no longer failed
    assert again.status_code == 409 and "cannot be retried" in again.text


@pytest.mark.parametrize(
    "path",
    ["/activity?kind=event&kind=failed", "/why-not?email=a@b.c&flow=x&flow=y", "/visitors?q=a&q=b"],
)
def test_a_page_refuses_a_query_parameter_given_twice(browser, path):
    """As the API does (422 naming it): a page never silently takes one of the values."""
    response = browser.get(path)
    assert response.status_code == 422
    assert "given more than once; give one value" in response.text
    assert "<!doctype html>" in response.text


def test_a_nul_in_a_pages_query_is_refused_with_a_page(browser):
    """Refused before any route (400, SPEC §6); a browser gets a page, the API JSON."""
    page = browser.get("/activity?flow=%00", headers={"Accept": "text/html"})
    assert page.status_code == 400 and "text/html" in page.headers["content-type"]
    assert "the path or query contains a NUL character" in page.text
    api = browser.get("/api/sessions?email=%00", headers={"Accept": "text/html"})
    assert api.status_code == 400
    assert api.json() == {"detail": "the path or query contains a NUL character"}


def test_an_edit_that_sends_at_once_is_saved_only_once_confirmed(browser, driver):
    driver.apply_example("nudge.yaml", "onboarding.yaml")
    for email in ("a@example.com", "b@example.com", "c@example.com"):
        driver.send("$signup", email)
    driver.clock.advance(timedelta(hours=1))
    page = browser.get("/flows/onboarding?tab=edit").text
    text = unescape(
        re.search(r'<textarea name="definition"[^>]*>(.*?)</textarea>', page, re.S).group(1)
    )
    shortened = text.replace("wait: 2d", "wait: 1m")

    checked = browser.post(
        "/ui/flows/onboarding/check", content=shortened, headers={"X-CSRF-Token": csrf(browser)}
    ).json()
    assert checked["impact"]["sends_at_once"] == {"sessions": 3, "emails": 3, "webhooks": 0}

    asked = post(browser, "/flows/onboarding/edit", definition=shortened)
    assert asked.status_code == 409
    assert (
        "Saving wakes 3 sessions at once, which then send 3 emails and 0 webhooks right away."
        in unescape(asked.text)
    )
    assert 'name="confirm" value="1"' in asked.text and "Save and send now" in asked.text
    assert driver.app.show_flow("onboarding")["version"] == 1
    driver.run()
    assert [m["step"] for m in driver.app.messages()].count("nudge") == 0

    saved = post(browser, "/flows/onboarding/edit", definition=shortened, confirm="1")
    assert saved.headers["location"] == "/flows/onboarding"
    assert driver.app.show_flow("onboarding")["version"] == 2
    driver.run()
    assert [m["step"] for m in driver.app.messages()].count("nudge") == 3


def test_a_splits_branches_show_their_share_of_the_sessions(browser, driver):
    """Weights are relative: 80 and 50 are 62 % and 38 % (the page said 80% / 50%)."""
    driver.apply(
        """
key: ab
trigger: {event: go}
steps:
  - id: pick
    split:
      - {weight: 80, steps: [{tag: {add: [a]}}]}
      - {weight: 50, steps: [{tag: {add: [b]}}]}
"""
    )
    page = unescape(browser.get("/flows/ab").text)
    assert "62% / 38%" in page
    assert "80%" not in page and "50%" not in page


def test_a_flow_with_a_webhook_trigger_shows_its_hook_and_the_canvas_says_so(browser, driver):
    driver.apply(
        "key: paid\ntrigger: {webhook: {email: '{{ body.email }}'}}\nsteps: [{exit: true}]"
    )
    page = unescape(browser.get("/flows/paid").text)
    assert "POST http://127.0.0.1:8000/api/hooks/paid" in page
    [secret] = re.findall(r"<code data-hook-secret>([^<]+)</code>", page)
    assert secret == driver.app.hook("paid")[1]
    assert '<div class="box-summary">POST /api/hooks/paid</div>' in page
    driver.apply("key: plain\ntrigger: {tag_added: vip}\nsteps: [{exit: true}]")
    plain = unescape(browser.get("/flows/plain").text)
    assert "data-hook" not in plain
    assert '<div class="box-summary">tag vip added</div>' in plain
