"""Stopping one visitor's session, turning a flow off and on, and what happens to waits,
events and goals in between (SPEC §1)."""

from __future__ import annotations

from datetime import timedelta

from sluice.records import FlowStatus

WAITING_FLOW = """
key: drip
trigger: {event: go}
exit: [{event: bought}]
steps:
  - {id: pause, wait: 1d}
  - id: listen
    wait_for: {event: ping, timeout: 2d}
    then: [{id: pinged, tag: {add: [pinged]}}]
    on_timeout: [{id: quiet, tag: {add: [quiet]}}]
  - {id: last, tag: {add: [done]}}
"""


def test_a_stopped_session_stays_at_its_step_until_resumed(driver, app):
    driver.apply(WAITING_FLOW)
    [sid] = driver.send("go", "s@example.com").sessions_started
    stopped = app.stop_session(sid, actor="support")
    assert stopped["status"] == "stopped" and stopped["step"] == "pause"
    assert stopped["timeline"][-1]["data"] == {"by": "support"}
    driver.advance(timedelta(days=3))
    assert driver.session(sid)["status"] == "stopped"
    app.resume_session(sid)
    driver.run()
    session = driver.session(sid)
    # the wait's time passed while stopped: it ends at once (catch-up)
    assert session["step"] == "listen" and session["status"] == "waiting"
    assert [e["kind"] for e in session["timeline"]][-5:] == [
        "stopped",
        "resumed",
        "wait_ended",
        "step",
        "waiting",
    ]


def test_turning_a_flow_off_pauses_its_sessions_and_on_resumes_them_stopped_ones_too(driver, app):
    driver.apply(WAITING_FLOW)
    [a] = driver.send("go", "a@example.com").sessions_started
    [b] = driver.send("go", "b@example.com").sessions_started
    app.stop_session(b)
    app.set_flow_status("drip", FlowStatus.OFF)
    assert driver.session(a)["paused"] is True and driver.session(a)["status"] == "waiting"
    assert driver.send("go", "c@example.com").sessions_started == []  # no new sessions while off
    driver.advance(timedelta(days=2))
    assert driver.session(a)["step"] == "pause"  # nothing advances while off
    app.set_flow_status("drip", FlowStatus.ON)
    driver.run()
    for sid in (a, b):
        session = driver.session(sid)
        assert session["paused"] is False
        assert session["status"] == "waiting" and session["step"] == "listen"
        assert "resumed" in [e["kind"] for e in session["timeline"]]


def test_an_awaited_event_that_arrived_while_paused_counts_on_resume(driver, app):
    driver.apply(WAITING_FLOW)
    [sid] = driver.send("go", "e@example.com").sessions_started
    driver.advance(timedelta(days=1))
    assert driver.session(sid)["waiting_for"] == "ping"
    app.set_flow_status("drip", FlowStatus.OFF)
    driver.send("ping", "e@example.com")
    assert driver.visitor("e@example.com")["tags"] == []
    app.set_flow_status("drip", FlowStatus.ON)
    driver.run()
    assert driver.visitor("e@example.com")["tags"] == ["pinged", "done"]


def test_a_goal_met_while_paused_is_applied_on_resume(driver, app):
    driver.apply(WAITING_FLOW)
    [sid] = driver.send("go", "g@example.com").sessions_started
    app.set_flow_status("drip", FlowStatus.OFF)
    driver.send("bought", "g@example.com")
    assert driver.session(sid)["status"] == "waiting"
    app.set_flow_status("drip", FlowStatus.ON)
    driver.run()
    session = driver.session(sid)
    assert session["status"] == "exited"
    assert session["timeline"][-1]["data"] == {"reason": "goal"}


def test_on_resume_extend_adds_the_paused_time_to_the_wait(driver, app, clock):
    driver.apply(WAITING_FLOW.replace("key: drip", "key: drip\non_resume: extend"))
    [sid] = driver.send("go", "x@example.com").sessions_started
    wake = driver.session(sid)["wake_at"]
    driver.advance(timedelta(hours=6))
    app.set_flow_status("drip", FlowStatus.OFF)
    driver.advance(timedelta(hours=10))
    app.set_flow_status("drip", FlowStatus.ON)
    driver.run()
    session = driver.session(sid)
    assert session["status"] == "waiting" and session["step"] == "pause"
    from datetime import datetime

    assert datetime.fromisoformat(session["wake_at"]) == datetime.fromisoformat(wake) + timedelta(
        hours=10
    )
    driver.advance(timedelta(hours=17))
    assert driver.session(sid)["step"] == "pause"
    driver.advance(timedelta(hours=1, minutes=1))
    assert driver.session(sid)["step"] == "listen"


def test_flow_on_and_off_are_in_the_audit_log(driver, app):
    driver.apply(WAITING_FLOW)
    app.set_flow_status("drip", FlowStatus.OFF)
    actions = [c["action"] for c in app.flow_changes("drip")]
    assert actions == ["version", "on", "off"]
