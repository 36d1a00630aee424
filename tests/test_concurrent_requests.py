"""Requests that arrive at the same time, on both databases: each save gets its own
version, one creation answers 201, and a slow batch keeps no one else waiting."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import sqlalchemy as sa

from api_support import Api, served
from sluice.api.app import create_app
from sluice.store.schema import flow_versions, visitors

SAVES = 20


def _parallel(calls) -> list[httpx.Response]:
    with ThreadPoolExecutor(max_workers=SAVES) as pool:
        return list(pool.map(lambda call: call(), calls))


def _versions(app) -> list[int]:
    with app.db.read() as conn:
        return list(
            conn.execute(
                sa.select(flow_versions.c.version)
                .where(flow_versions.c.flow_key == "race")
                .order_by(flow_versions.c.version)
            ).scalars()
        )


def test_concurrent_saves_of_one_flow_each_get_their_own_version(app):
    with served(create_app(app)) as url, httpx.Client(base_url=url, timeout=60) as client:
        api = Api(app, client)

        def save(days: int):
            body = f"key: race\ntrigger: {{event: race}}\nsteps:\n  - wait: {days}d\n"
            return lambda: api.put(
                "/flows/race", content=body, headers={"Content-Type": "application/yaml"}
            )

        first = _parallel([save(days) for days in range(1, SAVES + 1)])
        assert sorted(r.status_code for r in first) == [200] * (SAVES - 1) + [201]
        assert _versions(app) == list(range(1, SAVES + 1))
        # ... and again for a flow that exists
        again = _parallel([save(days) for days in range(SAVES + 1, 2 * SAVES + 1)])
        assert {r.status_code for r in again} == {200}
        assert _versions(app) == list(range(1, 2 * SAVES + 1))
        assert api.get("/flows/race").json()["version"] == 2 * SAVES


def test_concurrent_applies_of_one_template_each_get_their_own_version(app):
    with served(create_app(app)) as url, httpx.Client(base_url=url, timeout=60) as client:
        api = Api(app, client)

        def apply(n: int):
            document = {"kind": "template", "key": "nudge", "subject": f"Stuck {n}?", "text": "Hi"}
            return lambda: api.post("/apply", json=[document])

        answers = _parallel([apply(n) for n in range(SAVES)])
        assert {r.status_code for r in answers} == {200}, [r.text for r in answers]
        assert sorted(r.json()["templates"]["nudge"] for r in answers) == list(range(1, SAVES + 1))
        assert api.get("/templates/nudge").json()["version"] == SAVES


def test_of_concurrent_creations_of_one_subscriber_tag_or_field_only_one_answers_201(app):
    with served(create_app(app)) as url, httpx.Client(base_url=url, timeout=60) as client:
        api = Api(app, client)
        bodies = {
            "/fetch/subscribers": {"subscriber": {"email": "race@example.com"}},
            "/fetch/tags": {"tag": {"name": "racer"}},
            "/fetch/fields": {"field": {"key": "lap"}},
        }
        for path, body in bodies.items():
            answers = _parallel([lambda p=path, b=body: api.bento_post(p, b)] * SAVES)
            codes = sorted(r.status_code for r in answers)
            assert codes == [200] * (SAVES - 1) + [201], (path, codes)
        subscribers = api.bento_get("/fetch/subscribers", email="race@example.com").json()
        assert subscribers["data"]["attributes"]["email"] == "race@example.com"


def test_an_event_is_accepted_while_a_batch_of_heavy_emails_renders(app):
    heavy = "<p>{% for i in (1..10000) %}{{ i }}{% endfor %}</p>"
    emails = [
        {"to": f"r{n}@example.com", "subject": "Hi", "html_body": heavy, "transactional": True}
        for n in range(60)
    ]
    finished: dict[str, float] = {}
    with served(create_app(app)) as url, httpx.Client(base_url=url, timeout=120) as client:
        api = Api(app, client)

        def batch():
            answer = api.bento_post("/batch/emails", {"emails": emails})
            finished["batch"] = time.monotonic()
            finished["results"] = answer.json()["results"]

        sender = threading.Thread(target=batch)
        sender.start()
        deadline = time.monotonic() + 30
        while _count(app, visitors) < len(emails):  # the recipients exist: rendering began
            assert time.monotonic() < deadline, "the batch did not begin"
            time.sleep(0.01)
        event = api.post("/events", json={"type": "visit", "email": "e@example.com"})
        finished["event"] = time.monotonic()
        sender.join(timeout=120)
    assert event.status_code == 200
    assert finished["results"] == len(emails)
    assert finished["event"] < finished["batch"]


def _count(app, table) -> int:
    with app.db.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
