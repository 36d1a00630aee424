"""Bento's own Node SDK (npm @bentonow/bento-node-sdk, pinned in tests/sdk), unchanged
but for its base URL, drives a real `sluice serve` process: the promise that an app
wired to Bento works by changing one URL.

`make test` installs the SDK (`npm ci --prefix tests/sdk`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from api_support import free_port

SDK_DIR = Path(__file__).parent / "sdk"
SLUICE = str(Path(sys.executable).parent / "sluice")
CREDENTIALS = {
    "SLUICE_SITE_UUID": "6f1f2e8c-0000-4000-8000-000000000001",
    "SLUICE_PUBLISHABLE_KEY": "p-test-publishable",
    "SLUICE_SECRET_KEY": "s-test-secret",
}
FLOWS = {
    "welcome": "key: welcome\ntrigger: {event: $signup}\nsteps:\n  - {id: hello, tag: {add: [welcomed]}}\n",
    "vip": "key: vip\ntrigger: {event: $tag, if: 'event.details.tag == \"vip\"'}\nsteps:\n  - {id: note, tag: {add: [vip-noted]}}\n",
    "buyer": "key: buyer\nentry: every_time\ntrigger: {event: $purchase}\nsteps:\n  - {id: thanks, tag: {add: [customer]}}\n",
    # Data changes: a tag added by a command or a flow's step, a field set by a command.
    "customers": "key: customers\ntrigger: {tag_added: customer}\nsteps:\n  - {id: onboard, tag: {add: [onboarded]}}\n",
    "seats": "key: seats\ntrigger: {field_changed: seats}\nsteps:\n  - {id: count, field: {set: {seats_seen: '{{ origin.details.to }}'}}}\n",
    "imported": "key: imported\ntrigger: {tag_added: imported}\nsteps:\n  - {id: never, tag: {add: [wrong]}}\n",
}


@pytest.fixture
def server(database_url, tmp_path):
    """`sluice serve` on a free port, with preset credentials; yields its URL."""
    if shutil.which("node") is None:
        pytest.fail("node is needed for the SDK test (node 18 or later)")
    if not (SDK_DIR / "node_modules" / "@bentonow" / "bento-node-sdk").is_dir():
        pytest.fail(
            "the Bento SDK is not installed: run `npm ci --prefix tests/sdk` (make test does)"
        )
    port = free_port()
    env = {
        **os.environ,
        **CREDENTIALS,
        "SLUICE_DATABASE_URL": database_url,
        "SLUICE_SIGNING_KEY": "k",
    }
    process = subprocess.Popen(
        [SLUICE, "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.stderr.read()
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "sluice serve did not start"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_bentos_node_sdk_works_against_sluice_with_only_its_base_url_changed(server):
    native = httpx.Client(
        base_url=f"{server}/api",
        headers={"Authorization": f"Bearer {CREDENTIALS['SLUICE_SECRET_KEY']}"},
        timeout=30,
    )
    for key, text in FLOWS.items():
        saved = native.put(
            f"/flows/{key}", content=text, headers={"Content-Type": "application/yaml"}
        )
        assert saved.status_code == 201, saved.text
        assert native.post(f"/flows/{key}/on").status_code == 200
    segment = "kind: segment\nkey: customers\nname: Customers\nrules: [{tag: customer}]\n"
    saved = native.put(
        "/segments/customers", content=segment, headers={"Content-Type": "application/yaml"}
    )
    assert saved.status_code == 201, saved.text

    done = subprocess.run(
        ["node", str(SDK_DIR / "bento_sdk_check.mjs")],
        env={**os.environ, **CREDENTIALS, "SLUICE_URL": server},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)

    # Every event call reports one event accepted; the repeated purchase too.
    for call in ("track", "tagSubscriber", "updateFields", "purchase1", "purchase2"):
        assert out[call] is True, call
    assert (out["addSubscriber"], out["removeSubscriber"]) == (True, True)
    assert out["importEvents"] == 2
    assert out["importSubscribers"] == 2
    assert out["commands"] == dict.fromkeys(out["commands"], 1)
    assert out["wrongSecret"] == "NotAuthorizedError"

    ada = wait_for(
        native,
        "ada@example.com",
        lambda v: {"welcomed", "vip-noted", "customer", "onboarded"} <= set(v["tags"]),
    )
    assert ada["fields"] == {"first_name": "Ada", "plan": "team"}
    # `buyer`'s step added `customer`, which started `customers`.
    assert sorted(s["flow"] for s in ada["sessions"]) == ["buyer", "customers", "vip", "welcome"]
    purchases = [e for e in ada["events"] if e["type"] == "$purchase"]
    assert len(purchases) == 1  # the same unique key twice is stored once
    assert purchases[0]["details"]["value"] == {"currency": "EUR", "amount": 4200}

    bob = native.get("/visitors/bob@example.com").json()
    assert (bob["fields"], bob["subscribed"]) == ({"first_name": "Bob"}, False)
    assert (
        native.get("/visitors/dan@example.com")
        .json()["events"][0]["date"]
        .startswith("2026-01-05T09:00:00")
    )

    # Imports change data but record no events and start nothing; plain commands start
    # the flows whose trigger names their change, recording its origin event.
    erin = wait_for(native, "erin@example.com", lambda v: "onboarded" in v["tags"])
    erin = wait_for(native, "erin@example.com", lambda v: "seats_seen" in v["fields"])
    assert set(erin["tags"]) == {"imported", "customer", "onboarded"}
    assert erin["fields"] == {"seats": 5, "seats_seen": "5"}  # field steps render text
    assert sorted((e["type"], e["details"]) for e in erin["events"]) == [
        ("$field_changed", {"field": "seats", "from": None, "to": 5}),
        ("$segment_entered", {"segment": "customers"}),  # the tag put her in the segment
        ("$tag_added", {"tag": "customer"}),
    ]
    assert sorted(s["flow"] for s in erin["sessions"]) == ["customers", "seats"]
    frank = native.get("/visitors/frank@example.com").json()
    assert (frank["fields"], frank["subscribed"], frank["events"]) == (
        {"company": "Acme"},
        True,
        [],
    )
    # `lead` was deleted (below), from Gina too.
    assert native.get("/visitors/gina@new.example").json()["tags"] == []
    assert native.get("/visitors/gina@example.com").status_code == 404

    # Look-ups return Bento's shapes.
    assert out["byEmail"] == out["byUuid"]
    assert out["byEmail"]["type"] == "visitors"
    assert out["byEmail"]["attributes"]["email"] == "erin@example.com"
    assert out["unknown"] is None
    assert out["created"]["attributes"]["email"] == "hank@example.com"
    tag_ids = {t["attributes"]["name"]: t["id"] for t in out["tags"]}
    assert {"vip", "imported", "customer", "lead", "partner"} <= set(tag_ids)
    # `onboarded` too once the `customers` flow has run, which it may not have yet.
    tag_names = {i: name for name, i in tag_ids.items()}
    cached = {tag_names[i] for i in out["byEmail"]["attributes"]["cached_tag_ids"]}
    assert cached - {"onboarded"} == {"imported", "customer"}
    assert out["createdTag"][0]["attributes"]["name"] == "partner"
    assert out["deletedTag"] == {"message": "Tag lead deleted; 1 subscriber(s) had it"}
    assert "lead" not in {t["attributes"]["name"] for t in out["tagsAfter"]}
    field_names = {f["attributes"]["key"]: f["attributes"]["name"] for f in out["fields"]}
    assert field_names["favouriteColour"] == "Favourite Colour"
    assert {"first_name", "plan", "company", "seats"} <= set(field_names)
    assert {w["id"]: w["attributes"]["status"] for w in out["workflows"]} == dict.fromkeys(
        FLOWS, "live"
    )

    # Everyone the calls above created, Bob and Frank having unsubscribed (Frank came back).
    people = native.get("/visitors", params={"limit": 100}).json()
    unsubscribed = sum(not p["subscribed"] for p in people)
    assert out["siteStats"] == {
        "user_count": len(people),
        "subscriber_count": len(people) - unsubscribed,
        "unsubscriber_count": unsubscribed,
    }
    assert unsubscribed >= 1
    customers = [p for p in people if "customer" in p["tags"]]
    assert out["segmentStats"] == {
        "user_count": len(customers),
        "subscriber_count": sum(p["subscribed"] for p in customers),
        "unsubscriber_count": sum(not p["subscribed"] for p in customers),
    }
    assert len(customers) >= 1
    assert (out["createdBroadcasts"]["results"], out["createdBroadcasts"]["failed"]) == (1, 0)
    [launch] = out["broadcasts"]
    assert launch["attributes"]["name"] == "Launch"
    assert launch["attributes"]["status"] == "draft"  # not approved: sent from the UI or API
    assert launch["attributes"]["from"] == {"name": "Shop", "email": "shop@example.com"}

    assert out["emails"] == 1
    [receipt] = native.get("/messages", params={"email": "ada@example.com"}).json()
    assert (receipt["state"], receipt["payload"]["subject"]) == ("outbox", "Receipt order-1")


def wait_for(native: httpx.Client, email: str, ready, timeout: float = 20.0) -> dict:
    """The visitor's profile once the embedded worker has got it to `ready`."""
    deadline = time.monotonic() + timeout
    while True:
        profile = native.get(f"/visitors/{email}").json()
        if ready(profile) or time.monotonic() > deadline:
            return profile
        time.sleep(0.1)
