"""Prometheus metrics: what an operator scrapes from `sluice serve`."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from sluice.api.app import create_app
from sluice.store.ingest import IncomingEvent


def value(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
    assert match, f"{name} not in metrics"
    return float(match.group(1))


def test_metrics_show_sessions_backlog_and_worker_counters(driver, app):
    driver.apply(
        "key: m\ntrigger: {event: go}\nsteps:\n  - {id: t, tag: {add: [x]}}\n  - {id: w, wait: 1d}\n"
    )
    before = value(TestClient(create_app(app)).get("/metrics").text, "sluice_worker_steps_total")
    driver.send("go", "a@example.com")
    driver.send("go", "b@example.com")
    app.send([IncomingEvent(type="go", email="c@example.com")])  # not run yet: due
    response = TestClient(create_app(app)).get("/metrics")
    assert response.status_code == 200
    text = response.text
    assert value(text, 'sluice_sessions{status="waiting"}') == 2
    assert value(text, 'sluice_sessions{status="active"}') == 1
    assert value(text, "sluice_sessions_due") == 1
    assert value(text, "sluice_claim_lag_seconds") == 0
    assert value(text, "sluice_worker_steps_total") - before == 4
