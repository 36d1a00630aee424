"""Helpers for the web UI's browser tests: a real `sluice serve`, Chromium, the login,
and realistic data to look at.

`chromium()` launches Debian's Chromium headless. `serve(database, **settings)` runs
`sluice serve` (embedded worker and dispatcher) on a SQLite file with the test
credentials and any further settings (an SMTP server, private webhook addresses
allowed), and yields its base URL and settings.

`seed(app, hook=…, smtp=…)` fills that installation, through the same database, the
way an application and an operator would, and returns a `Seeded` naming what a test
can open:

- a couple of hundred visitors (fields, a few unsubscribed), forty of them in the
  onboarding flow with their welcome email sent over SMTP, the others tagged
  `reader` by a flow whose sessions completed;
- one visitor whose welcome email the SMTP server refused (550): a failed email in
  the outbox;
- two flows whose webhooks go to `hook`, which answers 500: `crm-sync`, whose
  sessions are retrying it, and `churn-alert` (one attempt), whose session failed;
- a session stopped by support, and sessions paused because their flow (the
  abandoned cart) was turned off after they entered;
- the onboarding flow edited once after its sessions started (versions 1 and 2), and
  every example flow applied (the trial flow stays off);
- a segment of the readers (`readers`: a page of members and more), saved twice;
- a broadcast to the readers, sent over SMTP (one of them opened it), and a draft
  broadcast to everyone from the `nudge` template.

`hook` and `smtp` are `delivery_servers.WebhookServer` and `SmtpServer`, started
before `serve` so that its settings can point at them (see `hook_answering_500`).
Other UI tests can build on `Seeded` (and extend it) rather than sending their own
events.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from delivery_servers import SmtpServer, WebhookServer, free_port
from sluice.definitions.parse import load_documents
from sluice.records import FlowStatus
from sluice.service import Sluice
from sluice.settings import Settings, env_name
from sluice.store.broadcasts import NewBroadcast
from sluice.store.ingest import IncomingEvent

ROOT = Path(__file__).resolve().parents[1]
SLUICE = str(Path(sys.executable).with_name("sluice"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
EXAMPLES = ROOT / "src" / "sluice" / "ui" / "examples"
PASSWORD = "browser-test-password"
SECRET_KEY = "s" + "b" * 48


@contextmanager
def serve(database: Path, **settings) -> Iterator[tuple[str, Settings]]:
    """`sluice serve` on the SQLite file `database` with the test credentials and
    `settings` (Settings field names: smtp_url=…, webhook_allow_private=True), passed
    as its environment; yields (base URL, Settings) once it answers /healthz, and
    stops it afterwards."""
    values = {
        "database_url": f"sqlite:///{database}",
        "admin_password": PASSWORD,
        "secret_key": SECRET_KEY,
        "signing_key": "browser-test-signing-key",
        **settings,
    }
    environment = {
        env_name(name): str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in values.items()
    }
    port = free_port()
    process = subprocess.Popen(
        [SLUICE, "serve", "--port", str(port)],
        env={**os.environ, **environment},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: process.poll() is not None or _healthy(base), timeout=60)
        if process.poll() is not None:
            raise AssertionError(f"sluice serve did not start: {process.stderr.read()}")
        yield base, Settings(**values)
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def chromium():
    """Debian's Chromium, headless, driven by Playwright (which never downloads one)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise AssertionError(
            "Chromium is missing: `make test` installs it (apt-get install chromium)"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextmanager
def logged_in_page(base: str, *, width: int, height: int, timeout: float):
    """A logged-in page of a fresh Chromium at `base`, `timeout` in ms for each wait;
    on leaving, fails the test if a script of the page threw."""
    with chromium() as browser:
        context = browser.new_context(base_url=base, viewport={"width": width, "height": height})
        context.set_default_timeout(timeout)
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(error))
        log_in(page)
        yield page
        context.close()
        assert errors == [], f"errors in the page's scripts: {errors}"


COMMENTED = """\
# Greets new sign-ups.
key: greeter
name: Greeter
trigger:
  event: $signup   # every sign-up
steps:
  - id: welcome
    email:
      subject: Welcome!
      html: |
        <p>Hello.</p>
  # then a pause
  - id: pause
    wait: 2d
"""
"""A flow whose comments a save from the builder must keep."""


def api(base: str, method: str, path: str, **options) -> httpx.Response:
    """A request to the native API of the server at `base`, with the secret key."""
    headers = {"Authorization": f"Bearer {SECRET_KEY}", **options.pop("headers", {})}
    return httpx.request(method, f"{base}/api{path}", headers=headers, **options)


def put_flow(base: str, key: str, text: str) -> dict:
    """Save `text` (YAML) as flow `key` through the API, as an author would; the flow."""
    put = api(
        base, "PUT", f"/flows/{key}", content=text, headers={"Content-Type": "application/yaml"}
    )
    assert put.status_code in (200, 201), put.text
    return put.json()


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz").status_code == 200
    except httpx.TransportError:
        return False


def log_in(page) -> None:
    """Logs in from the login page the UI redirects to."""
    page.goto("/")
    assert "/login" in page.url
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def wait_for(condition, timeout: float = 10.0):
    """Poll until `condition()` is truthy (the server's worker runs on its own)."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.1)
    return result


def send(app: Sluice, event_type: str, email: str, **options) -> None:
    app.send([IncomingEvent(type=event_type, email=email, **options)])


# -- realistic data ------------------------------------------------------------------

FLOWS = """
key: readers
name: Readers
description: Tag the visitors who read the docs.
trigger: {event: page_viewed}
entry: once
steps:
  - id: mark_reader
    tag: {add: [reader]}
---
key: crm-sync
name: CRM sync
description: Tell the CRM when a visitor changes plan.
trigger: {event: plan_changed}
steps:
  - id: tell_crm
    webhook:
      url: URL
      body: {email: '{{ visitor.email }}', plan: '{{ event.details.plan }}'}
  - id: synced
    tag: {add: [synced]}
---
key: churn-alert
name: Churn alert
trigger: {event: subscription_cancelled}
steps:
  - id: alert_sales
    webhook: {url: URL, retries: 1}
"""
READERS = """\
kind: segment
key: readers
name: Readers
match: any
rules:
  - tag: reader            # tagged by the readers flow
  - event: page_viewed
    at_least: 2
    within: 7d
"""
FIRST_NAMES = ["Ada", "Bob", "Chen", "Dee", "Emil", "Fatima", "Goran", "Hana", "Ivo", "Jun"]
PLANS = ["free", "pro", "team"]


@dataclass
class Seeded:
    """What `seed` made, for tests to open."""

    visitors: list[str]
    """Every visitor's email, in the order they arrived."""
    onboarded: list[str]
    """The visitors in the onboarding flow whose welcome email was sent."""
    bounced: str
    """The visitor whose welcome email the SMTP server refused."""
    failed_session: int
    """A churn-alert session, failed: its webhook answered 500 to its one attempt."""
    failed_message: int
    """The refused email's id in the outbox."""
    retrying_sessions: list[int]
    """crm-sync sessions whose webhook answered 500 and is to be tried again."""
    stopped_session: int
    """An onboarding session stopped by support."""
    paused_sessions: list[int]
    """Abandoned-cart sessions, paused: the flow was turned off after they entered."""
    edited_flow: str = "onboarding"
    """A flow with two versions."""
    segment: str = "readers"
    """A segment of more visitors than a page shows, with two versions."""
    broadcast: int = 0
    """A broadcast to the readers, sent."""
    draft_broadcast: int = 0
    """A draft broadcast to everyone, from a template."""


def hook_answering_500() -> WebhookServer:
    """A webhook receiver that answers 500 to every request (of the few a test makes:
    retries come minutes apart)."""
    return WebhookServer(answers=[500] * 1000)


def seed(app: Sluice, *, hook: WebhookServer, smtp: SmtpServer, visitors: int = 200) -> Seeded:
    """Fills the installation `app` reads (a `serve` started with smtp_url=smtp.url and
    webhook_allow_private=True) as described in this module's docstring, waiting for
    its worker and dispatcher; takes some seconds."""
    documents = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        documents += [(path.name, d) for d in load_documents(path.read_text(), path.name)]
    flows = FLOWS.replace("URL", hook.url("/crm"))
    documents += [("seed.yaml", d) for d in load_documents(flows, "seed.yaml")]
    app.apply(documents, actor="ops")
    for key in ("onboarding", "abandoned-cart", "readers", "crm-sync", "churn-alert"):
        app.set_flow_status(key, FlowStatus.ON, actor="ops")

    emails = [f"{FIRST_NAMES[i % 10].lower()}.{i}@example.com" for i in range(visitors)]
    onboarded = emails[:40]
    app.send(
        [
            IncomingEvent(
                type="$signup" if email in onboarded else "page_viewed",
                email=email,
                details={"plan": PLANS[i % 3]} if email in onboarded else {"path": f"/docs/{i}"},
                fields={"first_name": FIRST_NAMES[i % 10], "company": f"Company {i // 7}"},
            )
            for i, email in enumerate(emails)
        ]
    )
    wait_for(lambda: len(smtp.received) >= len(onboarded), timeout=60)
    readers = len(emails) - len(onboarded)
    wait_for(
        lambda: len(app.sessions(flow="readers", status="completed", limit=readers)) == readers
    )
    for email in emails[-5:]:
        app.unsubscribe_by_link(app.visitor(email)["uuid"])

    bounced = "bounce@example.com"
    smtp.answers.append("550 5.1.1 <bounce@example.com>: mailbox unavailable")
    send(app, "$signup", bounced, fields={"first_name": "Bounce"})
    message = wait_for(lambda: _failed_message(app, bounced), timeout=30)

    shoppers = emails[40:45]
    for n, email in enumerate(shoppers):
        send(app, "checkout_started", email, details={"cart_id": f"c{n}", "items": []})
    wait_for(lambda: len(app.sessions(flow="abandoned-cart")) == len(shoppers))
    app.set_flow_status("abandoned-cart", FlowStatus.OFF, actor="ops")

    for email in emails[45:48]:
        send(app, "plan_changed", email, details={"plan": "team"})
    send(app, "subscription_cancelled", emails[48])
    failed = wait_for(lambda: app.sessions(flow="churn-alert", status="failed"), timeout=30)[0]
    wait_for(lambda: len(hook.requests) >= 4, timeout=30)

    stopped = app.sessions(email=onboarded[0], flow="onboarding")[0]["id"]
    app.stop_session(stopped, actor="support")

    definition = app.show_flow("onboarding")["definition"]
    definition["steps"][1]["wait"] = "3d"
    app.apply([("onboarding.yaml", definition)], actor="ops")
    app.apply_text(READERS.replace("at_least: 2", "at_least: 1"), "readers.yaml", actor="ops")
    app.apply_text(READERS, "readers.yaml", note="one page is a visit, not reading", actor="ops")
    sent, draft = _broadcasts(app, smtp)
    return Seeded(
        visitors=[*emails, bounced],
        onboarded=onboarded,
        bounced=bounced,
        failed_session=failed["id"],
        failed_message=message["id"],
        retrying_sessions=[s["id"] for s in app.sessions(flow="crm-sync")],
        stopped_session=stopped,
        paused_sessions=[s["id"] for s in app.sessions(flow="abandoned-cart")],
        broadcast=sent,
        draft_broadcast=draft,
    )


def _broadcasts(app: Sluice, smtp: SmtpServer) -> tuple[int, int]:
    """The sent broadcast (once every email of it reached `smtp`) and the draft."""
    news = {
        "subject": "What's new in the docs, {{ visitor.first_name }}",
        "html": "<h1>Docs digest</h1><p>Hi {{ visitor.first_name }}, three new guides.</p>"
        '<p><a href="https://example.com/docs">Read them</a></p>',
    }
    new = NewBroadcast(name="Docs digest", email=news, segment_key="readers")
    sent = app.create_broadcast(new, send=True, actor="ops")["id"]
    done = wait_for(lambda: _sent(app, sent), timeout=60)
    wait_for(lambda: app.broadcast(sent)["stats"]["sent"] == done["stats"]["queued"], timeout=60)
    reader = app.broadcast_audience("readers")["first"]
    [email] = [
        m for m in app.messages(email=reader) if m["idempotency_id"].startswith(f"<b{sent}.")
    ]
    app.record_engagement(email["idempotency_id"], "email_opened", {})
    draft = NewBroadcast(name="Come back", email={"template": "nudge"})
    return sent, app.create_broadcast(draft, actor="ops")["id"]


def _sent(app: Sluice, broadcast_id: int) -> dict | None:
    found = app.broadcast(broadcast_id)
    return found if found["status"] == "sent" else None


def _failed_message(app: Sluice, email: str) -> dict | None:
    messages = app.messages(email=email)
    return messages[0] if messages and messages[0]["state"] == "failed" else None
