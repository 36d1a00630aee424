"""Broadcasts (docs/broadcasts.md): a one-off email to a segment or to everyone,
accepted at once and queued a chunk at a time by the worker; the unsubscribed and
erased skipped and counted; sent through the delivery path with tracking and stats;
at a local time in each visitor's zone; cancelled; and Bento's broadcast endpoints."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from conftest import Driver
from delivery_servers import SmtpServer
from sluice.audience import Change, SubscriberImport
from sluice.definitions.parse import load_documents
from sluice.service import Sluice
from sluice.settings import Settings
from sluice.store.broadcasts import CHUNK, NewBroadcast
from sluice.store.schema import deliveries

CUSTOMERS = "kind: segment\nkey: customers\nname: Customers\nrules: [{tag: customer}]\n"
HELLO = {"subject": "News for {{ visitor.first_name | default: 'you' }}", "html": "<p>Hi</p>"}


def emails_of(app, broadcast_id: int) -> list:
    with app.db.read() as conn:
        return conn.execute(
            sa.select(deliveries).where(deliveries.c.broadcast_id == broadcast_id)
        ).all()


def import_customers(app, count: int, *, start: int = 0) -> None:
    for first in range(start, start + count, 1000):
        rows = [
            SubscriberImport(email=f"c{n}@example.com", tags=("customer",))
            for n in range(first, min(first + 1000, start + count))
        ]
        app.audience.import_subscribers(rows)


def test_a_broadcast_to_a_segment_of_10000_reaches_each_subscribed_member_once(driver, app):
    driver.apply(CUSTOMERS)
    import_customers(app, 10_000)
    driver.send("signed_up", "outsider@example.com")  # not in the segment
    unsubscribe = [
        (n, Change(command="unsubscribe", email=f"c{n * 7}@example.com")) for n in range(300)
    ]
    app.audience.run_commands(unsubscribe)

    found = app.create_broadcast(
        NewBroadcast(name="Spring news", email=HELLO, segment_key="customers"), send=True
    )
    assert found["status"] == "scheduled"  # accepted at once: nothing queued yet
    assert found["stats"]["queued"] == 0
    driver.worker.run_once()
    partway = app.broadcast(found["id"])
    assert partway["status"] == "sending"
    assert 0 < partway["stats"]["queued"] < 10_000
    driver.run()

    done = app.broadcast(found["id"])
    assert done["status"] == "sent"
    assert done["stats"]["queued"] == 9_700
    assert done["stats"]["skipped_unsubscribed"] == 300
    sent = emails_of(app, found["id"])
    assert len(sent) == 9_700
    recipients = {row.payload["to"] for row in sent}
    assert len(recipients) == 9_700
    assert "c7@example.com" not in recipients and "outsider@example.com" not in recipients
    assert sent[0].payload["subject"] == "News for you"
    assert sent[0].payload["unsubscribe_url"]


def test_the_unsubscribed_and_erased_are_skipped_and_opens_and_clicks_counted(driver, app, clock):
    driver.apply(CUSTOMERS)
    import_customers(app, CHUNK + 5)  # more than one chunk
    app.audience.run_commands([(0, Change(command="unsubscribe", email="c1@example.com"))])
    app.erase_visitor("c2@example.com")
    import_customers(app, 1, start=2)  # the erased address comes back: still suppressed
    found = app.create_broadcast(
        NewBroadcast(
            name="Tagged",
            email=HELLO,
            segment_key="customers",
            exclusive_tags=["vip"],
        ),
        send=True,
    )
    app.audience.run_commands([(0, Change(command="add_tag", email="c3@example.com", name="vip"))])
    driver.run()
    stats = app.broadcast(found["id"])["stats"]
    assert (stats["queued"], stats["skipped_unsubscribed"], stats["skipped_suppressed"]) == (
        CHUNK + 5 - 3,
        1,
        1,
    )
    assert stats["outbox"] == CHUNK + 2  # no SMTP server: kept in the outbox

    [first, second, *_] = emails_of(app, found["id"])
    assert app.record_engagement(first.idempotency_id, "email_opened", {})
    assert not app.record_engagement(first.idempotency_id, "email_opened", {})
    assert app.record_engagement(second.idempotency_id, "email_clicked", {"url": "https://x.test"})
    stats = app.broadcast(found["id"])["stats"]
    assert (stats["opened"], stats["clicked"]) == (1, 1)


@pytest.fixture
def mail(database_url, clock):
    with SmtpServer(clock) as smtp:
        settings = Settings(
            database_url=database_url, signing_key="k", smtp_url=smtp.url, timezone="UTC"
        )
        app = Sluice(settings, clock)
        yield app, Driver(app, clock), smtp
        app.close()


def test_a_broadcast_at_a_local_time_goes_at_that_time_in_each_zone(mail, clock):
    app, driver, smtp = mail
    driver.send("signed_up", "tokyo@example.com", fields={"timezone": "Asia/Tokyo"})
    driver.send("signed_up", "ny@example.com", fields={"timezone": "America/New_York"})
    driver.send("signed_up", "utc@example.com")
    day = clock.now() + timedelta(days=2)
    found = app.create_broadcast(
        NewBroadcast(name="Morning", email=HELLO, local_time="09:00"), send=True, send_at=day
    )
    driver.run()
    assert app.broadcast(found["id"])["stats"]["queued"] == 0  # not before UTC+14 reaches it
    driver.advance(timedelta(days=2))
    times = {row.payload["to"]: row.next_attempt_at for row in emails_of(app, found["id"])}
    date = day.date()
    assert times == {
        "tokyo@example.com": datetime(date.year, date.month, date.day, 0, 0, tzinfo=UTC),
        "ny@example.com": datetime(date.year, date.month, date.day, 14, 0, tzinfo=UTC),
        "utc@example.com": datetime(date.year, date.month, date.day, 9, 0, tzinfo=UTC),
    }

    clock.set(datetime(date.year, date.month, date.day, 9, 30, tzinfo=UTC))
    asyncio.run(app.dispatcher().run_once())
    assert sorted(m.message["To"] for m in smtp.received) == [
        "tokyo@example.com",
        "utc@example.com",
    ]
    stats = app.broadcast(found["id"])["stats"]
    assert (stats["sent"], stats["pending"]) == (2, 1)


def test_cancelling_stops_what_is_not_sent_and_a_sent_broadcast_is_not_sent_again(mail, clock):
    app, driver, _ = mail
    for n in range(5):
        driver.send("signed_up", f"p{n}@example.com")
    found = app.create_broadcast(NewBroadcast(name="Slow", email=HELLO, per_hour=2), send=True)
    driver.run()
    hours = sorted(row.next_attempt_at - clock.now() for row in emails_of(app, found["id"]))
    assert hours == [timedelta(0)] * 2 + [timedelta(hours=1)] * 2 + [timedelta(hours=2)]
    cancelled = app.cancel_broadcast(found["id"])
    assert cancelled["status"] == "cancelled"
    assert cancelled["stats"]["skipped"] == 5
    with pytest.raises(Exception, match="cancelled already"):
        app.cancel_broadcast(found["id"])
    with pytest.raises(Exception, match="cannot be sent again"):
        app.send_broadcast(found["id"])

    draft = app.create_broadcast(NewBroadcast(name="Later", email=HELLO))
    assert draft["status"] == "draft"
    driver.run()
    assert emails_of(app, draft["id"]) == []


# -- the API ------------------------------------------------------------------------------


@pytest.fixture
def api(app):
    from api_support import api_in_process

    with api_in_process(app) as api:
        yield api


def test_broadcasts_through_the_native_and_bento_apis(api, app, driver):
    driver.apply(CUSTOMERS)
    driver.send(
        "$tag", "ada@example.com", details={"tag": "customer"}, fields={"first_name": "Ada"}
    )

    bad = api.post(
        "/broadcasts",
        json={"name": "x", "email": {"subject": "{{ oops", "html": "hi"}, "segment": "nope"},
    )
    assert bad.status_code == 422
    locs = {p["loc"] for p in bad.json()["detail"]}
    assert locs == {"email.subject", "segment"}
    assert api.get("/broadcasts").json() == []

    draft = api.post("/broadcasts", json={"name": "News", "email": HELLO, "segment": "customers"})
    assert draft.status_code == 201
    broadcast_id = draft.json()["id"]
    sent = api.post(f"/broadcasts/{broadcast_id}/send")
    assert sent.json()["status"] == "scheduled"
    driver.run()
    shown = api.get(f"/broadcasts/{broadcast_id}").json()
    assert (shown["status"], shown["stats"]["outbox"]) == ("sent", 1)
    assert api.post(f"/broadcasts/{broadcast_id}/send").status_code == 409
    assert api.get("/broadcasts/999").status_code == 404

    created = api.bento_post(
        "/batch/broadcasts",
        {
            "broadcasts": [
                {
                    "name": "Bento news",
                    "subject": "Hello {{ visitor.first_name }}",
                    "content": "<p>Hi</p>",
                    "type": "html",
                    "from": {"email": "shop@example.com", "name": "Shop"},
                    "inclusive_tags": "customer, vip",
                    "batch_size_per_hour": 100,
                    "approved": True,
                },
                {"name": "Broken", "subject": "x"},
                {"name": "Draft", "subject": "x", "content": "y", "segment_id": "nope"},
            ]
        },
    ).json()
    assert (created["results"], created["failed"]) == (1, 2)
    assert [f["index"] for f in created["failures"]] == [1, 2]
    assert "no segment with key 'nope'" in created["failures"][1]["error"]
    driver.run()
    [bento] = [b for b in app.broadcasts() if b["name"] == "Bento news"]
    [email] = emails_of(app, bento["id"])
    assert email.payload["subject"] == "Hello Ada"
    assert email.payload["from"] == "Shop <shop@example.com>"
    listed = api.bento_get("/fetch/broadcasts").json()["data"]
    assert [b["attributes"]["name"] for b in listed] == ["Bento news", "News"]
    assert listed[0]["attributes"]["inclusive_tags"] == "customer,vip"


def test_a_broadcast_whose_template_is_gone_stops_with_its_reason_and_holds_up_nothing(driver, app):
    template = "kind: template\nkey: promo\nsubject: Promo\nhtml: <p>x</p>\n"
    app.apply([("promo.yaml", d) for d in load_documents(template, "promo.yaml")])
    driver.send("signed_up", "ada@example.com")
    broken = app.create_broadcast(NewBroadcast(name="Promo", email={"template": "promo"}))
    app.delete_template("promo")
    app.send_broadcast(broken["id"])
    fine = app.create_broadcast(NewBroadcast(name="Fine", email=HELLO), send=True)
    driver.run()
    stopped = app.broadcast(broken["id"])
    assert stopped["status"] == "cancelled"
    assert "unknown template 'promo'" in stopped["last_error"]
    assert app.broadcast(fine["id"])["stats"]["queued"] == 1


def test_an_api_call_sends_only_when_it_says_so_plainly(api, driver):
    driver.send("signed_up", "ada@example.com")
    loose = api.post("/broadcasts", json={"name": "x", "email": HELLO, "send": "yes"})
    assert loose.status_code == 422
    late = {"name": "x", "email": HELLO, "send": True, "send_at": "9999-12-31T23:59:59-05:00"}
    assert api.post("/broadcasts", json=late).status_code == 422
    alone = api.post("/broadcasts", json={"name": "x", "email": HELLO, "send_at": late["send_at"]})
    assert alone.status_code == 422
    bento = api.bento_post(
        "/batch/broadcasts",
        {
            "broadcasts": [
                {"name": "a", "subject": "s", "content": "c", "approved": "yes"},
                {"name": "n" * 300, "subject": "s", "content": "c"},
                {"name": "b", "subject": "s", "content": "c", "segment_id": ""},
                {"name": "c", "subject": "s", "content": "c", "batch_size_per_hour": -5},
            ]
        },
    ).json()
    assert (bento["results"], bento["failed"]) == (0, 4)
    assert api.get("/broadcasts").json() == []


def test_cancelling_stops_emails_waiting_to_be_retried(mail):
    app, driver, smtp = mail
    driver.send("signed_up", "ada@example.com")
    smtp.answers.append("451 try again later")
    found = app.create_broadcast(NewBroadcast(name="Retry", email=HELLO), send=True)
    driver.run()
    asyncio.run(app.dispatcher().run_once())
    [email] = emails_of(app, found["id"])
    assert (email.state, email.attempts) == ("pending", 1)
    cancelled = app.cancel_broadcast(found["id"])
    assert cancelled["stats"]["skipped"] == 1
