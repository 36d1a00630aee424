"""Web UI logins that end when they should, and forms that only our own pages can
send: on SQLite and PostgreSQL, with the CLI as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from html import unescape
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import Driver
from sluice.api.app import create_app
from sluice.service import Sluice
from sluice.settings import Settings
from test_ui_pages import PASSWORD, csrf, login

SLUICE = str(Path(sys.executable).parent / "sluice")


@pytest.fixture
def sluice(database_url, clock):
    """An installation whose admin password is stored (as `sluice serve` leaves it),
    so that `sluice admin set-password` can change it."""
    app = Sluice(Settings(database_url=database_url, signing_key="test-signing-key"), clock)
    app.credentials.set_admin_password(PASSWORD)
    Driver(app, clock).apply_example("nudge.yaml", "onboarding.yaml")
    yield app
    app.close()


def client(app: Sluice, **options) -> TestClient:
    return TestClient(create_app(app), follow_redirects=False, **options)


def copy_of(browser: TestClient, app: Sluice) -> TestClient:
    """Another client holding the same session cookie, as someone who copied it."""
    thief = client(app)
    thief.cookies.set("sluice_ui", browser.cookies["sluice_ui"])
    return thief


def flow_status(app: Sluice) -> str:
    return app.show_flow("onboarding")["status"]


def assert_logged_out(thief: TestClient, token: str, app: Sluice) -> None:
    """Pages send the copy to the login, and its forms change nothing."""
    page = thief.get("/flows/onboarding")
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Fflows%2Fonboarding"
    refused = thief.post("/flows/onboarding/off", data={"csrf": token})
    assert refused.status_code == 303 and refused.headers["location"] == "/login"
    assert (
        thief.post("/ui/flows/onboarding/check", headers={"X-CSRF-Token": token}).status_code == 401
    )
    assert flow_status(app) == "on"


def test_a_cookie_copied_before_logout_is_refused_after_it(sluice):
    browser = client(sluice)
    assert login(browser).status_code == 303
    thief = copy_of(browser, sluice)
    token = csrf(thief)  # the copy works until the logout
    assert thief.get("/").status_code == 200

    logged_out = browser.post("/logout", data={"csrf": csrf(browser)})
    assert logged_out.headers["location"] == "/login"

    assert_logged_out(thief, token, sluice)
    assert browser.get("/").status_code == 303
    # A new login works as before, and is a session of its own.
    assert login(browser).status_code == 303
    assert browser.get("/").status_code == 200
    assert thief.get("/").status_code == 303


def test_every_process_sees_the_logout_at_once(sluice, database_url, clock):
    """Two server processes of one installation: a logout in one ends the session
    in the other on its very next request (nothing is cached)."""
    other = Sluice(Settings(database_url=database_url, signing_key="test-signing-key"), clock)
    try:
        browser = client(sluice)
        login(browser)
        elsewhere = copy_of(browser, other)
        token = csrf(elsewhere)
        browser.post("/logout", data={"csrf": csrf(browser)})
        assert_logged_out(elsewhere, token, sluice)
    finally:
        other.close()


def test_setting_the_password_with_the_cli_ends_every_session(sluice, database_url, tmp_path):
    browser = client(sluice)
    login(browser)
    token = csrf(browser)
    env = {
        **os.environ,
        "SLUICE_DATABASE_URL": database_url,
        "SLUICE_SIGNING_KEY": "test-signing-key",
    }
    env.pop("SLUICE_ADMIN_PASSWORD", None)
    done = subprocess.run(
        [SLUICE, "admin", "set-password", "--password", "a new password"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "admin password changed"

    assert_logged_out(browser, token, sluice)
    assert login(browser).status_code == 401  # the old password
    assert login(browser, password="a new password").status_code == 303
    assert browser.get("/").status_code == 200


# -- other sites' forms ------------------------------------------------------------


CROSS_SITE = [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Origin": "http://testserver:8080"},  # another port is another origin
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
]


@pytest.mark.parametrize("headers", CROSS_SITE)
def test_a_cross_site_post_is_refused_even_with_a_valid_token(sluice, headers):
    browser = client(sluice)
    login(browser)
    token = csrf(browser)
    refused = browser.post("/flows/onboarding/off", data={"csrf": token}, headers=headers)
    assert refused.status_code == 403
    text = unescape(refused.text)
    assert "Request refused" in text
    assert "This request was sent from another site" in text and "Sluice changed nothing" in text
    editor = browser.post(
        "/ui/flows/onboarding/check", headers={"X-CSRF-Token": token, **headers}, content=b""
    )
    assert editor.status_code == 403
    assert editor.json()["detail"].startswith("This request was sent from another site")
    assert browser.post("/logout", data={"csrf": token}, headers=headers).status_code == 403
    assert flow_status(sluice) == "on"
    assert browser.get("/").status_code == 200  # the refused logout did not log out


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://testserver"},  # the address the request was sent to
        {"Origin": "http://127.0.0.1:8000"},  # SLUICE_PUBLIC_URL, e.g. behind a proxy
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},  # typed by the user
        {},  # neither header (an old browser, a script): the token decides
    ],
)
def test_a_post_from_this_site_is_accepted(sluice, headers):
    browser = client(sluice)
    login(browser)
    done = browser.post("/flows/onboarding/off", data={"csrf": csrf(browser)}, headers=headers)
    assert done.status_code == 303
    assert flow_status(sluice) == "off"


def test_the_login_form_is_refused_from_another_site(sluice):
    browser = client(sluice)
    page = browser.get("/login")
    token = page.text.split('name="login_token" value="')[1].split('"')[0]
    refused = browser.post(
        "/login",
        data={"username": "admin", "password": PASSWORD, "login_token": token, "next": "/"},
        headers={"Origin": "https://evil.example"},
    )
    assert refused.status_code == 403
    assert "sluice_ui=" not in refused.headers.get("set-cookie", "")


# -- the signing key -------------------------------------------------------------------


def test_with_a_configured_signing_key_a_cookie_signed_with_the_stored_one_is_refused(
    database_url, clock
):
    """Whoever reads the stored key (an old backup of the database, say) cannot forge
    a login once SLUICE_SIGNING_KEY keeps the key outside the database."""
    stored = Sluice(Settings(database_url=database_url), clock)
    stored.credentials.ensure()
    stored.credentials.set_admin_password(PASSWORD)
    old = client(stored)
    assert login(old).status_code == 303 and old.get("/").status_code == 200
    configured = Sluice(Settings(database_url=database_url, signing_key="kept-outside"), clock)
    try:
        assert configured.secret("signing_key") == "kept-outside"
        refused = copy_of(old, configured)
        assert refused.get("/").status_code == 303
        fresh = client(configured)
        assert login(fresh).status_code == 303 and fresh.get("/").status_code == 200
        assert copy_of(fresh, stored).get("/").status_code == 303  # and the other way round
    finally:
        configured.close()
        stored.close()
