"""Prometheus metrics: what an operator scrapes from `sluice serve`."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from sluice.api.app import create_app
from sluice.service import Sluice
from sluice.store.ingest import IncomingEvent

LOCAL = ("127.0.0.1", 50000)
"""A scraper on the machine itself: the only one answered when no token is set."""


def value(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
    assert match, f"{name} not in metrics"
    return float(match.group(1))


def test_metrics_show_sessions_backlog_and_worker_counters(driver, app):
    driver.apply(
        "key: m\ntrigger: {event: go}\nsteps:\n  - {id: t, tag: {add: [x]}}\n  - {id: w, wait: 1d}\n"
    )
    scraper = TestClient(create_app(app), client=LOCAL)
    before = value(scraper.get("/metrics").text, "sluice_worker_steps_total")
    driver.send("go", "a@example.com")
    driver.send("go", "b@example.com")
    app.send([IncomingEvent(type="go", email="c@example.com")])  # not run yet: due
    response = scraper.get("/metrics")
    assert response.status_code == 200
    text = response.text
    assert value(text, 'sluice_sessions{status="waiting"}') == 2
    assert value(text, 'sluice_sessions{status="active"}') == 1
    assert value(text, "sluice_sessions_due") == 1
    assert value(text, "sluice_claim_lag_seconds") == 0
    assert value(text, "sluice_worker_steps_total") - before == 4


@pytest.mark.parametrize("address", ["10.0.0.7", "2001:db8::1", "testclient"])
def test_without_a_token_metrics_answer_only_to_this_machine(app, address):
    remote = TestClient(create_app(app), client=(address, 40000)).get("/metrics")
    assert remote.status_code == 403
    assert "set SLUICE_METRICS_TOKEN" in remote.text
    assert "sluice_sessions" not in remote.text
    for local in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        response = TestClient(create_app(app), client=(local, 40000)).get("/metrics")
        assert response.status_code == 200 and "sluice_sessions_due" in response.text


def test_with_a_token_metrics_need_it_from_everywhere(app, clock):
    guarded = Sluice(replace(app.settings, metrics_token="scrape-me"), clock)
    try:
        for address in ("10.0.0.7", "127.0.0.1"):
            client = TestClient(create_app(guarded), client=(address, 40000))
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "scrape-me"}):
                refused = client.get("/metrics", headers=headers)
                assert refused.status_code == 401
                assert refused.headers["www-authenticate"] == 'Bearer realm="metrics"'
                assert "sluice_sessions" not in refused.text
            allowed = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
            assert allowed.status_code == 200 and "sluice_sessions_due" in allowed.text
    finally:
        guarded.close()
