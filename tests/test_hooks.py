"""Inbound hooks (SPEC §7 Triggers, `webhook`): a payload posted to a flow's hook starts
a session for the visitor its templates name, recorded as a `$webhook` origin event;
the caller proves it knows the hook's secret by a bearer token or a Standard Webhooks
signature, and a signed sender's retries are stored once."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from api_support import api_in_process

PAID = """
key: paid
entry: every_time
trigger:
  webhook:
    email: '{{ body.data.customer.email }}'
    details: {amount: '{{ body.data.amount }}', plan: '{{ body.data.plan | upcase }}'}
  if: 'event.details.amount >= 100'
steps:
  - {id: thank, tag: {add: ['paid-{{ origin.details.plan }}']}}
"""
RAW = """
key: raw
trigger: {webhook: {email: '{{ body.who }}', idempotency_key: '{{ body.id }}'}}
steps: [{id: mark, field: {set: {got: '{{ origin.details.body.what }}'}}}]
"""


@pytest.fixture
def api(app):
    with api_in_process(app) as api:
        yield api


def payment(email: str, amount: int) -> dict:
    return {"type": "paid", "data": {"customer": {"email": email}, "amount": amount, "plan": "pro"}}


def hook_of(api, key: str) -> dict:
    answer = api.get(f"/flows/{key}/hook")
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_payload_with_the_secret_starts_a_session_for_the_visitor_it_names(api, driver):
    api.put_flow(PAID)
    hook = hook_of(api, "paid")
    assert hook["url"].endswith("/api/hooks/paid")
    assert hook["secret"].startswith("whsec_")
    bearer = {"Authorization": f"Bearer {hook['secret']}"}

    answer = api.client.post(
        "/api/hooks/paid", json=payment("Ada@Example.com", 250), headers=bearer
    )
    assert answer.status_code == 200, answer.text
    [session_id] = answer.json()["sessions_started"]
    small = api.client.post("/api/hooks/paid", json=payment("bob@example.com", 5), headers=bearer)
    assert (small.status_code, small.json()["sessions_started"]) == (200, [])  # the `if` said no
    driver.run()

    ada = driver.visitor("ada@example.com")
    assert "paid-PRO" in ada["tags"]
    [origin] = [e for e in ada["events"] if e["type"] == "$webhook"]
    assert origin["details"] == {"hook": "paid", "amount": 250, "plan": "PRO"}
    assert driver.session(session_id)["origin_event"]["id"] == origin["id"]


def test_a_standard_webhooks_signature_authenticates_and_its_id_makes_retries_count_once(
    api, driver
):
    api.put_flow(RAW)
    signer = Webhook(hook_of(api, "raw")["secret"])
    body = b'{"who": "ada@example.com", "what": "a parcel"}'

    def send(message_id: str):
        now = datetime.now(UTC)
        headers = {
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signer.sign(message_id, now, body.decode()),
            "Content-Type": "application/json",
        }
        return api.client.post("/api/hooks/raw", content=body, headers=headers)

    first, retry = send("msg_1"), send("msg_1")
    assert (first.status_code, first.json()["accepted"]) == (200, 1)
    assert (retry.status_code, retry.json()["duplicates"]) == (200, 1)
    driver.run()
    ada = driver.visitor("ada@example.com")
    assert ada["fields"]["got"] == "a parcel"
    assert len([e for e in ada["events"] if e["type"] == "$webhook"]) == 1


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "send the hook's secret as Authorization: Bearer SECRET"),
        ({"Authorization": "Bearer whsec_wrong"}, "wrong secret for this hook"),
        (
            {"webhook-id": "m", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"},
            "Standard Webhooks signature",
        ),
        (
            {
                "webhook-id": "m",
                "webhook-timestamp": str(int(time.time())),
                "webhook-signature": "nope",
            },
            "Standard Webhooks signature",
        ),
    ],
)
def test_a_call_without_the_hooks_secret_is_401_and_records_nothing(api, driver, headers, message):
    api.put_flow(PAID)
    answer = api.client.post(
        "/api/hooks/paid", json=payment("ada@example.com", 250), headers=headers
    )
    assert answer.status_code == 401
    assert message in answer.json()["detail"]
    assert api.get("/visitors/ada@example.com").status_code == 404


def test_the_secret_of_one_hook_opens_no_other(api):
    api.put_flow(PAID)
    api.put_flow(RAW)
    other = {"Authorization": f"Bearer {hook_of(api, 'raw')['secret']}"}
    answer = api.client.post("/api/hooks/paid", json=payment("ada@example.com", 250), headers=other)
    assert answer.status_code == 401


def test_bad_payloads_get_a_precise_answer_and_record_nothing(api):
    api.put_flow(PAID)
    bearer = {"Authorization": f"Bearer {hook_of(api, 'paid')['secret']}"}

    def post(**options):
        return api.client.post("/api/hooks/paid", headers=bearer, **options)

    not_json = post(content=b"amount=1")
    assert not_json.status_code == 400
    assert not_json.json()["detail"].startswith("the request body is not valid JSON")
    no_email = post(json={"data": {"amount": 250}})
    assert no_email.status_code == 422
    assert no_email.json()["detail"][0]["loc"] == "email"
    bad_email = post(json=payment("not an address", 250))
    assert bad_email.status_code == 422
    assert "not an email address" in bad_email.json()["detail"][0]["msg"]
    assert api.get("/visitors", params={"q": "example"}).json() == []


def test_only_a_flow_with_a_webhook_trigger_has_a_hook(api):
    api.put_flow("key: plain\ntrigger: {event: go}\nsteps: [{exit: true}]")
    shown = api.get("/flows/plain/hook")
    assert shown.status_code == 404
    assert shown.json()["detail"] == "flow 'plain' has no hook: its trigger is not webhook"
    # Without the API key, a caller learns nothing of which flows exist.
    for key in ("plain", "nope"):
        answer = api.client.post(f"/api/hooks/{key}", json={})
        assert (answer.status_code, answer.json()["detail"]) == (
            404,
            f"no hook at /api/hooks/{key}",
        )
    assert api.get("/flows/plain/hook", headers={"Authorization": "Bearer x"}).status_code == 401


def test_a_hook_of_a_flow_that_is_off_records_the_event_and_why_it_started_nothing(api, app):
    api.put_flow(PAID, on=False)
    bearer = {"Authorization": f"Bearer {hook_of(api, 'paid')['secret']}"}
    answer = api.client.post(
        "/api/hooks/paid", json=payment("ada@example.com", 250), headers=bearer
    )
    assert (answer.status_code, answer.json()["sessions_started"]) == (200, [])
    [refusal] = app.export_visitor("ada@example.com")["trigger_refusals"]
    assert (refusal["reason"], refusal["event"]["type"]) == ("flow_off", "$webhook")


def test_a_webhook_trigger_is_checked_when_the_flow_is_saved(api):
    answer = api.put(
        "/flows/bad",
        content="key: bad\ntrigger: {webhook: {details: {hook: x}}}\nsteps: [{exit: true}]",
        headers={"Content-Type": "application/yaml"},
    )
    assert answer.status_code == 422
    assert {p["loc"] for p in answer.json()["detail"]} == {
        "trigger.webhook.email",
        "trigger.webhook.details.hook",
    }


def signed(secret: str, message_id: str, body: bytes, signature: str | None = None) -> dict:
    now = datetime.now(UTC)
    good = Webhook(secret).sign(message_id, now, body.decode())
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature.format(good=good) if signature else good,
        "Content-Type": "application/json",
    }


def test_a_message_id_is_each_hooks_own_and_an_unreadable_signature_spoils_no_other(api, driver):
    api.put_flow(RAW)
    api.put_flow(RAW.replace("key: raw", "key: raw2"))
    body = b'{"who": "ada@example.com", "what": "x"}'
    for key in ("raw", "raw2"):
        secret = hook_of(api, key)["secret"]
        # One sender, one message id, two hooks: both flows start.
        headers = signed(secret, "msg_same", body, "v1,not_b64! {good}")
        answer = api.client.post(f"/api/hooks/{key}", content=body, headers=headers)
        assert (answer.status_code, answer.json()["accepted"]) == (200, 1), answer.text
    driver.run()
    flows = sorted(s["flow"] for s in driver.visitor("ada@example.com")["sessions"])
    assert flows == ["raw", "raw2"]


def test_a_body_the_event_cannot_hold_is_refused_saying_what_to_do(api):
    api.put_flow(RAW)
    secret = hook_of(api, "raw")["secret"]
    bearer = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}

    big = b'{"who": "ada@example.com", "what": "' + b"x" * 70_000 + b'"}'
    answer = api.client.post("/api/hooks/raw", content=big, headers=bearer)
    assert answer.status_code == 422
    assert answer.json()["detail"] == [
        {
            "loc": "body",
            "msg": "the body is larger than 64 KiB; map what the flow needs with the "
            "trigger's details",
        }
    ]
    deep = b'{"who": "ada@example.com", "x": ' + b"[" * 253 + b"]" * 253 + b"}"
    answer = api.client.post("/api/hooks/raw", content=deep, headers=bearer)
    assert answer.json()["detail"] == [
        {"loc": "body", "msg": "nested too deeply (at most 250 levels)"}
    ]
    latin1 = b'{"who": "ada@example.com", "what": "caf\xe9"}'
    answer = api.client.post("/api/hooks/raw", content=latin1, headers=signed(secret, "m", b"{}"))
    assert (answer.status_code, answer.json()["detail"]) == (
        400,
        "the request body is not UTF-8; expected a JSON document",
    )
    assert api.get("/visitors/ada@example.com").status_code == 404


def test_raising_the_secret_version_replaces_the_secret(api):
    api.put_flow(RAW)
    old = hook_of(api, "raw")["secret"]
    api.put_flow(RAW.replace("idempotency_key: '{{ body.id }}'", "secret_version: 2"))
    new = hook_of(api, "raw")["secret"]
    assert new != old
    body = {"who": "ada@example.com"}
    stale = api.client.post("/api/hooks/raw", json=body, headers={"Authorization": f"Bearer {old}"})
    assert stale.status_code == 401
    fresh = api.client.post("/api/hooks/raw", json=body, headers={"Authorization": f"Bearer {new}"})
    assert fresh.status_code == 200


def test_templates_see_the_headers_but_no_credential(api, driver):
    api.put_flow(
        "key: h\ntrigger: {webhook: {email: '{{ body.who }}', details: "
        "{all: '{{ headers }}', event: '{{ headers.x-github-event }}'}}}\nsteps: [{exit: true}]"
    )
    headers = {
        "Authorization": f"Bearer {hook_of(api, 'h')['secret']}",
        "X-Api-Key": "k1",
        "Proxy-Authorization": "Basic p",
        "X-Auth-Token": "t",
        "X-GitHub-Event": "push",
    }
    answer = api.client.post("/api/hooks/h", json={"who": "ada@example.com"}, headers=headers)
    assert answer.status_code == 200, answer.text
    [origin] = [e for e in driver.visitor("ada@example.com")["events"] if e["type"] == "$webhook"]
    assert origin["details"]["event"] == "push"
    shown = origin["details"]["all"]
    assert "x-github-event" in shown
    for hidden in ("k1", "Basic p", "whsec_", "x-auth-token"):
        assert hidden not in shown
