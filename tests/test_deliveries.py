"""The hand-off between steps and the dispatcher: an email or webhook step writes its
delivery in the step's transaction; the outcome moves the session on."""

from __future__ import annotations

from sluice.records import DeliveryState, FlowStatus
from sluice.store import deliveries as delivery_store
from sluice.store import sessions as session_store

FLOW = """
key: hook
trigger: {event: go}
steps:
  - id: call
    webhook:
      url: 'https://crm.example.com/{{ visitor.uuid }}'
      headers: {X-Plan: '{{ event.details.plan }}'}
      retries: {attempts: 3, backoff: 30s}
      on_failure: [{id: mark, tag: {add: [crm-failed]}}]
  - {id: after, tag: {add: [after]}}
"""


def pending(app, clock):
    with app.db.read() as conn:
        return delivery_store.pending(conn, now=clock.now(), limit=10)


def finish(app, clock, delivery, state, kind):
    with app.db.write() as conn:
        return delivery_store.finish(
            conn, delivery.idempotency_id, state=state, now=clock.now(), entry=(kind, {})
        )


def test_a_webhook_step_records_its_request_and_waits_for_the_outcome(driver, app, clock):
    driver.apply(FLOW)
    [sid] = driver.send("go", "w@example.com", details={"plan": "pro"}).sessions_started
    [delivery] = pending(app, clock)
    visitor = driver.visitor("w@example.com")
    assert delivery.payload["url"] == f"https://crm.example.com/{visitor['uuid']}"
    assert delivery.payload["headers"] == {"X-Plan": "pro"}
    assert delivery.payload["body"]["type"] == "flow.webhook"
    assert delivery.payload["body"]["session"] == {"id": sid}
    assert delivery.max_attempts == 3 and delivery.idempotency_id == f"msg_{sid}.call"
    assert driver.session(sid)["status"] == "waiting"
    assert finish(app, clock, delivery, DeliveryState.SENT, "webhook_delivered") is True
    assert finish(app, clock, delivery, DeliveryState.SENT, "webhook_delivered") is False
    driver.run()
    assert driver.session(sid)["status"] == "completed"
    assert driver.visitor("w@example.com")["tags"] == ["after"]


def test_a_failed_webhook_runs_on_failure_or_fails_the_session(driver, app, clock):
    driver.apply(FLOW)
    driver.apply(
        FLOW.replace("key: hook", "key: strict").replace(
            "      on_failure: [{id: mark, tag: {add: [crm-failed]}}]\n", ""
        )
    )
    started = driver.send("go", "f@example.com").sessions_started
    for delivery in pending(app, clock):
        finish(app, clock, delivery, DeliveryState.FAILED, "webhook_failed")
    driver.run()
    by_flow = {driver.session(s)["flow"]: driver.session(s) for s in started}
    assert by_flow["hook"]["status"] == "completed"
    assert driver.visitor("f@example.com")["tags"] == ["crm-failed", "after"]
    assert by_flow["strict"]["status"] == "failed"
    assert by_flow["strict"]["timeline"][-1]["kind"] == "failed"


def test_an_email_whose_rendered_html_nests_too_deeply_fails_the_session_saying_why(
    driver, app, clock
):
    driver.apply(
        "key: deep\ntrigger: {event: go}\nsteps:\n"
        "  - id: hello\n"
        "    email: {subject: Hi, html: '<p>{{ event.details.bio | raw }}</p>'}\n"
    )
    [sid] = driver.send("go", "d@example.com", details={"bio": "<div>" * 100_000}).sessions_started
    session = driver.session(sid)
    assert session["status"] == "failed"
    assert pending(app, clock) == []
    assert "more than 500 levels deep" in str(session["timeline"][-1])


def test_an_outcome_for_a_stopped_or_paused_session_waits_for_it_without_making_it_due(
    driver, app, clock
):
    """No claim may take such a session, so it gets no due time (which every claim
    would read again, and an idle worker would wake for); it moves on with the
    outcome once it is resumed or its flow is back on."""
    driver.apply(FLOW)
    driver.apply(FLOW.replace("key: hook", "key: other"))
    started = driver.send("go", "s@example.com").sessions_started
    by_flow = {driver.session(s)["flow"]: s for s in started}
    in_flight = pending(app, clock)  # their outcomes come after the stop: held no more
    app.stop_session(by_flow["hook"])
    app.set_flow_status("other", FlowStatus.OFF)
    assert pending(app, clock) == []  # held: no attempt while stopped or off
    for delivery in in_flight:
        finish(app, clock, delivery, DeliveryState.SENT, "webhook_delivered")
    with app.db.read() as conn:
        assert session_store.next_due(conn) is None
    assert driver.run() == 0
    app.resume_session(by_flow["hook"])
    app.set_flow_status("other", FlowStatus.ON)
    driver.run()
    assert {driver.session(s)["status"] for s in started} == {"completed"}
