"""Webhooks: signed requests to a real HTTP server on loopback, retried with backoff,
and refused when they would reach a private address."""

from __future__ import annotations

import asyncio
import random
import ssl
from datetime import timedelta

import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from conftest import Driver
from delivery_servers import (
    RawServer,
    WebhookServer,
    free_port,
    self_signed_certificate,
    server_tls,
)
from sluice.delivery.dispatcher import Dispatcher
from sluice.delivery.ssrf import refusal
from sluice.delivery.webhooks import WebhookSender, standard_secret
from sluice.service import Sluice
from sluice.settings import Settings
from sluice.store.sessions import InvalidSessionState

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

HOOK = """
key: hook
trigger: {event: go}
steps:
  - id: call
    webhook:
      url: '{{ event.details.url }}'
      headers: {X-Plan: '{{ event.details.plan }}'}
      retries: {attempts: 3, backoff: 30s}
  - {id: after, tag: {add: [called]}}
"""


def deliver(dispatcher: Dispatcher) -> int:
    return asyncio.run(dispatcher.run_once())


def hook_app(database_url, clock, *, allow_private=True, secret=SECRET) -> Sluice:
    settings = Settings(
        database_url=database_url,
        signing_key="k",
        webhook_secret=secret,
        webhook_allow_private=allow_private,
    )
    return Sluice(settings, clock)


@pytest.fixture
def hooks(database_url, clock):
    app = hook_app(database_url, clock)
    yield app
    app.close()


@pytest.fixture
def driver(hooks, clock) -> Driver:
    return Driver(hooks, clock)


@pytest.fixture
def server(clock):
    with WebhookServer(clock) as server:
        yield server


def start(driver: Driver, url: str, flow: str = HOOK, **details) -> int:
    driver.apply(flow)
    [sid] = driver.send("go", "wh@example.com", details={"url": url, **details}).sessions_started
    return sid


def rounds(dispatcher: Dispatcher, clock, *, until: timedelta, step=timedelta(seconds=1)):
    """Dispatch rounds while the clock moves on in small steps, as a running
    dispatcher would see it."""
    end = clock.now() + until
    while clock.now() < end:
        deliver(dispatcher)
        clock.advance(step)


def test_500_500_200_is_three_signed_attempts_with_one_webhook_id(driver, hooks, server, clock):
    sid = start(driver, server.url(), plan="pro")
    server.answers = [500, 500, 200]
    started = clock.now()
    rounds(hooks.dispatcher(rng=random.Random(1)), clock, until=timedelta(minutes=3))

    assert len(server.requests) == 3
    assert {r.headers["webhook-id"] for r in server.requests} == {f"msg_{sid}.call"}
    verifier = Webhook(SECRET)
    for request in server.requests:
        payload = verifier.verify(request.body, request.headers)
        assert payload["type"] == "flow.webhook" and payload["step"] == "call"
        assert payload["session"] == {"id": sid}
        assert payload["visitor"]["email"] == "wh@example.com"
        assert request.headers["X-Plan"] == "pro"
        assert request.headers["Content-Type"] == "application/json"
    first, second, third = (r.at - started for r in server.requests)
    assert first == timedelta(0)
    assert timedelta(seconds=24) <= second - first <= timedelta(seconds=37)  # 30 s ±20 %
    assert timedelta(seconds=48) <= third - second <= timedelta(seconds=73)  # 60 s ±20 %

    driver.run()
    session = driver.session(sid)
    assert session["status"] == "completed"
    entries = [e for e in session["timeline"] if e["kind"].startswith("webhook_")]
    assert [e["kind"] for e in entries] == [
        "webhook_attempt_failed",
        "webhook_attempt_failed",
        "webhook_delivered",
    ]
    assert [e["data"]["status"] for e in entries] == [500, 500, 200]
    assert entries[0]["data"]["response"] == "answer 500"
    assert entries[0]["data"]["attempt"] == 1 and "next_attempt_at" in entries[0]["data"]
    assert entries[2]["data"] == {"status": 200, "response": "answer 200", "attempt": 3}


def test_410_gone_is_final_at_once_and_fails_the_session(driver, hooks, server, clock):
    sid = start(driver, server.url())
    server.answers = [410]
    rounds(hooks.dispatcher(), clock, until=timedelta(hours=1), step=timedelta(minutes=5))
    assert len(server.requests) == 1
    driver.run()
    session = driver.session(sid)
    assert session["status"] == "failed"
    kinds = [e["kind"] for e in session["timeline"]]
    assert "webhook_attempt_failed" not in kinds
    [failed] = [e for e in session["timeline"] if e["kind"] == "webhook_failed"]
    assert failed["data"]["status"] == 410 and failed["data"]["error"] == "HTTP 410 Gone"
    assert session["timeline"][-1]["data"]["error"] == "webhook failed: HTTP 410 Gone"


def test_exhausted_retries_run_on_failure(driver, hooks, server, clock):
    flow = HOOK.replace(
        "      retries: {attempts: 3, backoff: 30s}\n",
        "      retries: {attempts: 3, backoff: 30s}\n"
        "      on_failure: [{id: mark, tag: {add: [crm-down]}}]\n",
    )
    sid = start(driver, server.url(), flow=flow)
    server.answers = [503, 503, 503]
    rounds(hooks.dispatcher(), clock, until=timedelta(minutes=5))
    assert len(server.requests) == 3
    driver.run()
    session = driver.session(sid)
    assert session["status"] == "completed"
    assert driver.visitor("wh@example.com")["tags"] == ["crm-down", "called"]
    [failed] = [e["data"] for e in session["timeline"] if e["kind"] == "webhook_failed"]
    assert failed["attempt"] == 3 and failed["status"] == 503


def test_a_custom_body_and_method_are_sent_as_given(driver, hooks, server):
    flow = """
key: custom
trigger: {event: go}
steps:
  - webhook:
      url: '{{ event.details.url }}'
      method: PUT
      body: {email: '{{ visitor.email }}', n: 3}
"""
    start(driver, server.url("/put"), flow=flow)
    deliver(hooks.dispatcher())
    [request] = server.requests
    assert (request.method, request.path) == ("PUT", "/put")
    assert orjson.loads(request.body) == {"email": "wh@example.com", "n": 3}
    Webhook(SECRET).verify(request.body, request.headers)


def test_loopback_is_refused_without_the_allowance(database_url, clock, server):
    app = hook_app(database_url, clock, allow_private=False)
    driver = Driver(app, clock)
    for host in ("127.0.0.1", "localhost"):
        sid = start(driver, f"http://{host}:{server.port}/hook")
        deliver(app.dispatcher())
        driver.run()
        session = driver.session(sid)
        [failed] = [e["data"] for e in session["timeline"] if e["kind"] == "webhook_failed"]
        assert failed["error"].startswith(
            f"refused: {host} resolves to 127.0.0.1, a loopback address"
        )
        assert "SLUICE_WEBHOOK_ALLOW_PRIVATE" in failed["error"]
        assert session["status"] == "failed"
    assert server.requests == []
    app.close()


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("127.0.0.1", "a loopback address"),
        ("::1", "a loopback address"),
        ("10.1.2.3", "a private address"),
        ("192.168.0.10", "a private address"),
        ("169.254.169.254", "a link-local address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("100.64.0.1", "a non-public address"),
        ("0.0.0.0", "an unspecified address"),
        ("93.184.215.14", None),
        ("2606:4700::6810:84e5", None),
    ],
)
def test_address_guard(address, refused):
    import ipaddress

    assert refusal(ipaddress.ip_address(address)) == refused


@pytest.mark.parametrize(
    "fault", ["hang", "garbage", "huge", "redirect:http://169.254.169.254/latest/meta-data"]
)
def test_a_misbehaving_endpoint_is_a_recorded_attempt_and_a_retry(
    driver, hooks, server, clock, fault
):
    flow = HOOK.replace("      retries:", "      timeout: 1s\n      retries:")
    sid = start(driver, server.url(), flow=flow)
    server.answers = [fault]
    dispatcher = hooks.dispatcher()
    deliver(dispatcher)
    [attempt] = [
        e["data"] for e in driver.session(sid)["timeline"] if e["kind"] == "webhook_attempt_failed"
    ]
    if fault == "hang":
        assert attempt["error"] == "no answer within 1s"
    elif fault == "garbage":
        assert attempt["error"] == "not an HTTP answer: Bad status line"
    elif fault == "huge":
        assert attempt["status"] == 500 and len(attempt["response"]) == 1024
    else:
        assert attempt["status"] == 302
        assert attempt["error"] == "HTTP 302 Found (redirects are not followed)"
    clock.advance(timedelta(minutes=2))
    deliver(dispatcher)
    assert len(server.requests) == 2  # the retry; a redirect was never followed
    driver.run()
    assert driver.session(sid)["status"] == "completed"


def test_a_connection_refused_is_retried(driver, hooks, clock):
    port = free_port()
    sid = start(driver, f"http://127.0.0.1:{port}/hook")
    deliver(hooks.dispatcher())
    [attempt] = [
        e["data"] for e in driver.session(sid)["timeline"] if e["kind"] == "webhook_attempt_failed"
    ]
    assert attempt["error"] == f"cannot connect to 127.0.0.1:{port}: Connection refused"


@pytest.mark.parametrize("url", ["not a url", "ftp://example.com/hook", "http://[::1/"])
def test_a_url_that_renders_to_nonsense_fails_the_step_at_once(driver, hooks, url):
    sid = start(driver, url)
    deliver(hooks.dispatcher())
    driver.run()
    session = driver.session(sid)
    assert session["status"] == "failed"
    assert f"invalid URL {url!r}" in session["timeline"][-1]["data"]["error"]


def test_a_header_with_a_line_break_fails_the_step_without_a_request(driver, hooks, server):
    """A template can put a visitor's data into a header; a line break there would
    start a header of the visitor's choosing."""
    sid = start(driver, server.url(), plan="pro\r\nX-Injected: yes")
    deliver(hooks.dispatcher())
    driver.run()
    session = driver.session(sid)
    assert session["status"] == "failed"
    assert session["timeline"][-1]["data"]["error"] == (
        "webhook failed: header X-Plan contains a line break"
    )
    assert server.requests == []


def test_a_dispatcher_killed_mid_send_loses_nothing(driver, hooks, server, clock):
    sid = start(driver, server.url())
    server.answers = ["hang", 200]

    async def killed_mid_send():
        dispatcher = hooks.dispatcher()
        attempt = asyncio.create_task(dispatcher.run_once())
        while not server.requests:
            await asyncio.sleep(0.01)
        attempt.cancel()  # the process dies: nothing is recorded, the claim stays
        with pytest.raises(asyncio.CancelledError):
            await attempt

    asyncio.run(killed_mid_send())
    other = hooks.dispatcher()
    assert deliver(other) == 0  # still claimed
    clock.advance(hooks.dispatcher().lease + timedelta(seconds=1))
    assert deliver(other) == 1
    assert [r.headers["webhook-id"] for r in server.requests] == [f"msg_{sid}.call"] * 2
    driver.run()
    assert driver.session(sid)["status"] == "completed"


def test_the_secret_is_used_in_the_standard_form():
    assert standard_secret(SECRET) == SECRET
    raw = standard_secret("plain-secret")
    assert raw.startswith("whsec_")
    WebhookSender("plain-secret")  # accepted either way
    sign = WebhookSender(SECRET)._signature("msg_1.a", b"{}")
    assert Webhook(SECRET).verify(b"{}", sign) == {}


def test_the_webhook_secret_command_prints_the_standard_form(database_url):
    from click.testing import CliRunner

    from sluice.cli import main

    result = CliRunner().invoke(main, ["--database-url", database_url, "webhook-secret"])
    assert result.exit_code == 0, result.output
    secret = result.output.strip()
    assert secret.startswith("whsec_")
    again = CliRunner().invoke(main, ["--database-url", database_url, "webhook-secret"])
    assert again.output.strip() == secret
    Webhook(secret)


def test_the_connection_goes_to_the_resolved_address_under_the_name(driver, hooks, server):
    """Connections are made to the address the name resolved to (the one that was
    checked), while the request still names the host."""
    start(driver, f"http://localhost:{server.port}/named")
    deliver(hooks.dispatcher())
    [request] = server.requests
    assert request.headers["Host"] == f"localhost:{server.port}"
    assert request.path == "/named"


def test_https_endpoints_must_show_a_trusted_certificate(driver, hooks, clock, tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    with WebhookServer(clock, tls=server_tls(cert, key)) as server:
        sid = start(driver, server.url("/secure"))
        deliver(hooks.dispatcher())  # the system's authorities do not know this one
        [attempt] = [
            e["data"]
            for e in driver.session(sid)["timeline"]
            if e["kind"] == "webhook_attempt_failed"
        ]
        assert attempt["error"].startswith("the certificate of 127.0.0.1 was refused: ")
        assert server.requests == []
        trust = ssl.create_default_context(cafile=str(cert))
        sender = WebhookSender(SECRET, allow_private=True, tls_context=trust)
        clock.advance(timedelta(minutes=2))
        deliver(Dispatcher(hooks.db, clock, [sender]))
        [request] = server.requests
        assert request.path == "/secure"
        Webhook(SECRET).verify(request.body, request.headers)
        driver.run()
        assert driver.session(sid)["status"] == "completed"


def test_a_failed_session_is_not_retried_beside_a_newer_one(driver, hooks, server, clock):
    """`one_at_a_time`: a failed session lets its visitor in again; while the newer
    session is under way, retrying the failed one would make two."""
    flow = """
key: hook
trigger: {event: go}
steps:
  - {id: call, webhook: {url: '{{ event.details.url }}'}}
  - {id: later, wait: 1d}
"""
    failed = start(driver, "not a url", flow=flow)
    deliver(hooks.dispatcher())
    driver.run()
    assert driver.session(failed)["status"] == "failed"
    [newer] = driver.send("go", "wh@example.com", details={"url": server.url()}).sessions_started
    deliver(hooks.dispatcher())
    driver.run()
    assert driver.session(newer)["status"] == "waiting"
    with pytest.raises(InvalidSessionState, match=f"its visitor is in session {newer} of 'hook'"):
        hooks.retry_session(failed)
    assert driver.session(failed)["status"] == "failed"
    driver.advance(timedelta(days=1))
    assert driver.session(newer)["status"] == "completed"
    assert hooks.retry_session(failed)["status"] == "active"


def test_an_answer_with_a_nul_byte_is_recorded_like_any_other(driver, hooks, server):
    """PostgreSQL cannot store a NUL character in JSON or text: the excerpt shows it
    as U+FFFD, like any byte that is not text."""
    sid = start(driver, server.url())
    server.answer = lambda handler, answer: server._reply(handler, 200, b"ok\x00\xff")
    deliver(hooks.dispatcher())
    driver.run()
    session = driver.session(sid)
    [delivered] = [e["data"] for e in session["timeline"] if e["kind"] == "webhook_delivered"]
    assert delivered["response"] == "ok\ufffd\ufffd"
    assert session["status"] == "completed"


@pytest.mark.parametrize("fault", ["unknown host", "closed", "reset", "not TLS", "queue full"])
def test_a_connection_error_says_what_went_wrong(driver, hooks, server, fault):
    flow = HOOK.replace("      retries:", "      timeout: 1s\n      retries:")
    with RawServer({"closed": "close", "queue full": "full"}.get(fault, fault)) as raw:
        where = f"127.0.0.1:{raw.port}"
        url = {
            "unknown host": "http://nothing.invalid/hook",  # reserved: never resolves
            "not TLS": server.url().replace("http:", "https:"),
        }.get(fault, f"http://{where}/hook")
        sid = start(driver, url, flow=flow)
        deliver(hooks.dispatcher())
    [attempt] = [
        e["data"] for e in driver.session(sid)["timeline"] if e["kind"] == "webhook_attempt_failed"
    ]
    assert (
        attempt["error"]
        == {
            "unknown host": "could not resolve nothing.invalid",
            "closed": f"{where} closed the connection without answering",
            "reset": f"{where} reset the connection",
            "not TLS": f"TLS with 127.0.0.1:{server.port} failed: wrong version number",
            "queue full": f"timed out connecting to {where} (1s)",
        }[fault]
    )


def test_a_body_value_that_is_one_output_keeps_its_json_type(driver, hooks, server):
    flow = """
key: typed
trigger: {event: go}
steps:
  - webhook:
      url: '{{ event.details.url }}'
      headers: {X-Items: '{{ event.details.items }}'}
      body:
        amount: '{{ event.details.amount }}'
        cents: '{{ event.details.amount | times: 100 }}'
        paid: '{{ event.details.paid }}'
        coupon: '{{ event.details.coupon }}'
        items: '{{ event.details.items }}'
        customer: '{{ event.details.customer }}'
        summary: 'Order of {{ event.details.amount }} with {{ event.details.items | json }}'
        name: '{{ visitor.first_name }}'
"""
    items = [{"sku": "X1", "qty": 2}]
    start(
        driver,
        server.url(),
        flow=flow,
        amount=19.5,
        paid=True,
        coupon=None,
        items=items,
        customer={"id": 7, "vip": False},
    )
    deliver(hooks.dispatcher())
    [request] = server.requests
    body = orjson.loads(request.body)
    summary = body.pop("summary")  # JSON text, keys in the order the database keeps
    assert summary.startswith("Order of 19.5 with [")
    assert orjson.loads(summary.removeprefix("Order of 19.5 with ")) == items
    assert body == {
        "amount": 19.5,
        "cents": 1950.0,
        "paid": True,
        "coupon": None,
        "items": items,
        "customer": {"id": 7, "vip": False},
        "name": None,
    }
    assert orjson.loads(request.headers["X-Items"]) == items
