"""The links in a sent email, followed over real HTTP against `sluice serve`'s
application: one-click unsubscribe, the open pixel, click redirects; and the stats
they feed."""

from __future__ import annotations

import re
import threading
import time
from html import unescape
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
import uvicorn
from click.testing import CliRunner

from conftest import Driver
from delivery_servers import SmtpServer, WebhookServer, free_port
from sluice.api.app import create_app
from sluice.cli import main
from sluice.store.ingest import IncomingEvent
from test_delivery_email import WELCOME, deliver, mail_app


@pytest.fixture
def smtp(clock):
    with SmtpServer(clock) as server:
        yield server


@pytest.fixture
def mailer(database_url, clock, smtp):
    app = mail_app(database_url, clock, smtp.url, webhook_allow_private=True)
    yield app
    app.close()


@pytest.fixture
def driver(mailer, clock) -> Driver:
    return Driver(mailer, clock)


@pytest.fixture
def site(mailer):
    """The HTTP application on a real socket; links are followed against it."""
    server = uvicorn.Server(
        uvicorn.Config(create_app(mailer), host="127.0.0.1", port=free_port(), log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    with httpx.Client(base_url=f"http://127.0.0.1:{server.config.port}") as client:
        yield client
    server.should_exit = True
    thread.join(timeout=10)


def local(url: str) -> str:
    """The path and query of a link (its host is the public URL, behind which the
    application would run)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def sent_email(driver: Driver, mailer, smtp, email: str):
    [sid] = driver.send("signed_up", email).sessions_started
    deliver(mailer.dispatcher())
    driver.run()
    return sid, smtp.received[-1].message


def links_in(message) -> tuple[str, list[str]]:
    html = message.get_body(("html",)).get_content()
    [pixel] = re.findall(r'<img src="([^"]+/o/[^"]+)"', html)
    clicks = [unescape(u) for u in re.findall(r'href="([^"]+/c/[^"]+)"', html)]
    return unescape(pixel), clicks


def test_one_click_unsubscribe(driver, mailer, smtp, site):
    driver.apply(WELCOME)
    _, message = sent_email(driver, mailer, smtp, "ann@example.com")
    link = local(message["List-Unsubscribe"].strip("<>"))

    page = site.get(link)
    assert page.status_code == 200 and 'method="post"' in page.text
    assert "Unsubscribe</button>" in page.text
    assert driver.visitor("ann@example.com")["subscribed"]  # a GET changes nothing

    answer = site.post(
        link,
        content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200 and "You are unsubscribed" in answer.text
    visitor = driver.visitor("ann@example.com")
    assert not visitor["subscribed"]
    assert [e["type"] for e in visitor["events"]].count("$unsubscribe") == 1
    assert site.post(link).status_code == 200  # a repeat is harmless and records nothing
    assert [e["type"] for e in driver.visitor("ann@example.com")["events"]].count(
        "$unsubscribe"
    ) == 1


@pytest.mark.parametrize("tamper", ["flip", "unsigned", "empty"])
def test_a_tampered_unsubscribe_link_is_refused_and_changes_nothing(
    driver, mailer, smtp, site, tamper
):
    driver.apply(WELCOME)
    _, message = sent_email(driver, mailer, smtp, "bob@example.com")
    token = urlsplit(message["List-Unsubscribe"].strip("<>")).query.removeprefix("t=")
    body, mac = token.split(".")
    bad = {
        "flip": f"{body}.{mac[:-2]}{'AA' if mac[-2:] != 'AA' else 'BB'}",
        "unsigned": body,
        "empty": "",
    }[tamper]
    assert site.get("/u", params={"t": bad}).status_code == 400
    assert site.post("/u", params={"t": bad}).status_code == 400
    assert driver.visitor("bob@example.com")["subscribed"]


def test_opens_and_clicks_are_recorded_once_and_clicks_redirect(driver, mailer, smtp, site):
    driver.apply(WELCOME)
    sid, message = sent_email(driver, mailer, smtp, "cat@example.com")
    pixel, [click] = links_in(message)

    for _ in range(2):
        image = site.get(local(pixel))
        assert image.status_code == 200 and image.headers["content-type"] == "image/gif"
        assert image.content.startswith(b"GIF89a")
        redirect = site.get(local(click))
        assert redirect.status_code == 302
        assert redirect.headers["location"] == "https://example.com/start?a=1&b=2"

    timeline = driver.session(sid)["timeline"]
    opened = [e for e in timeline if e["kind"] == "email_opened"]
    clicked = [e for e in timeline if e["kind"] == "email_clicked"]
    assert len(opened) == 1 and opened[0]["step"] == "hello"
    assert [e["data"]["url"] for e in clicked] == ["https://example.com/start?a=1&b=2"]
    [hello] = [s for s in mailer.flow_stats("welcome")["steps"] if s["step"] == "hello"]
    assert (hello["opened"], hello["clicked"]) == (1, 1)


def test_tampered_tracking_links_are_refused_without_redirecting(driver, mailer, smtp, site):
    driver.apply(WELCOME)
    sid, message = sent_email(driver, mailer, smtp, "dan@example.com")
    pixel, [click] = links_in(message)
    token = local(click).removeprefix("/c/")
    body, mac = token.split(".")
    evil = body.replace(body[5], "A" if body[5] != "A" else "B", 1)
    for path in (
        f"/c/{evil}.{mac}",
        f"/c/{body}",
        "/c/nonsense",
        local(pixel).replace("/o/", "/c/"),
    ):
        answer = site.get(path)
        assert answer.status_code == 400 and "location" not in answer.headers
    assert site.get(local(pixel) + "x").status_code == 404
    kinds = driver.kinds(sid)
    assert "email_clicked" not in kinds and "email_opened" not in kinds


def test_stats_of_email_and_webhook_steps(driver, mailer, smtp, site, clock, database_url):
    flow = WELCOME.replace(
        "  - id: after\n",
        "  - id: notify\n    webhook: {url: '{{ event.details.hook }}', retries: 1}\n  - id: after\n",
    )
    driver.apply(flow)
    with WebhookServer(clock) as hooks:
        hooks.answers = [200, 410, 200]
        details = {"hook": hooks.url()}
        smtp.answers = ["250 OK", "550 5.1.1 No such mailbox"]
        for email in ("opens@example.com", "fails@example.com", "leaves@example.com"):
            driver.app.send([IncomingEvent(type="signed_up", email=email, details=details)])
        driver.run()
        driver.app.send([IncomingEvent(type="$unsubscribe", email="leaves@example.com")])
        deliver(mailer.dispatcher())
        driver.run()
        pixel, clicks = links_in(smtp.received[0].message)
        site.get(local(pixel))
        site.get(local(clicks[0]))
        deliver(mailer.dispatcher())  # the webhooks of the two whose email is final
        driver.run()

    result = CliRunner().invoke(
        main, ["--database-url", database_url, "flows", "stats", "welcome", "--json"]
    )
    assert result.exit_code == 0, result.output
    steps = {s["step"]: s for s in orjson.loads(result.output)["steps"]}
    hello = {k: steps["hello"][k] for k in ("sent", "skipped", "failed", "opened", "clicked")}
    assert hello == {"sent": 1, "skipped": 1, "failed": 1, "opened": 1, "clicked": 1}
    notify = {k: steps["notify"][k] for k in ("delivered", "failed")}
    assert notify == {"delivered": 2, "failed": 1}  # whatever became of the email
