"""Live streams over a real HTTP connection: a session's timeline as it is written,
and the activity feed; both end when the client goes away."""

from __future__ import annotations

import json
import queue
import threading
import time

import httpx
import pytest

from api_support import Api, served, sse_messages
from conftest import eventually, listening
from sluice.api.app import create_app
from sluice.api.streams import Wakeups
from sluice.store.notify import TIMELINE_CHANNEL

FLOW = """
key: onboarding
trigger: {event: $signup}
steps:
  - id: welcome
    tag: {add: [new]}
  - id: settle
    wait: 2d
"""


@pytest.fixture
def live(app):
    """The API on a real port; `live.api` calls it, `live.web` is the application."""
    web = create_app(app)
    with served(web) as url, httpx.Client(base_url=url, timeout=10) as client:
        api = Api(app, client)
        api.web = web
        yield api


class Listening:
    """Reads a stream in a thread; its messages arrive in `messages`."""

    def __init__(self, api: Api, path: str, headers: dict[str, str] | None = None):
        self.messages: queue.Queue[dict[str, str]] = queue.Queue()
        self.stop = threading.Event()
        self.connected = threading.Event()
        headers = {**api.bearer, **(headers or {})}
        self.thread = threading.Thread(
            target=self._read, args=(str(api.client.base_url), path, headers), daemon=True
        )
        self.thread.start()
        assert self.connected.wait(10), "the stream did not open"
        assert self.status == 200
        assert self.content_type.startswith("text/event-stream")

    def _read(self, base: str, path: str, headers: dict[str, str]) -> None:
        try:
            with (
                httpx.Client(base_url=base, timeout=httpx.Timeout(10, read=None)) as client,
                client.stream("GET", path, headers=headers) as response,
            ):
                self.status = response.status_code
                self.content_type = response.headers["content-type"]
                self.connected.set()
                for message in sse_messages(response.iter_lines()):
                    self.messages.put(message)
                    if self.stop.is_set():
                        return
        except httpx.HTTPError:
            if not self.stop.is_set():
                raise  # the server went away while the test still listened

    def until(self, kind: str, timeout: float = 10.0) -> list[dict]:
        """Messages up to and including the first timeline entry of this kind."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {kind!r} within {timeout}s; got {seen}"
            message = self.messages.get(timeout=remaining)
            data = json.loads(message["data"])
            seen.append({**message, "data": data})
            if data.get("kind") == kind:
                return seen

    def close(self) -> None:
        self.stop.set()


def waiting_streams(api: Api) -> int:
    wakeups = getattr(api.web.state, "wakeups", None)
    return len(wakeups._waiting) if wakeups else 0


def test_a_session_stopped_and_resumed_shows_live_on_its_stream(live, driver):
    live.put_flow(FLOW)
    session_id = live.post("/events", json={"type": "$signup", "email": "ada@example.com"}).json()[
        "sessions_started"
    ][0]
    driver.run()
    stream = Listening(live, f"/api/sessions/{session_id}/stream")
    replayed = stream.until("waiting")
    assert [m["data"]["kind"] for m in replayed] == [
        "entered",
        "step",
        "tags_changed",
        "step",
        "waiting",
    ]
    assert all(m["event"] == "timeline" for m in replayed)

    assert live.post(f"/sessions/{session_id}/stop").status_code == 200
    stopped = stream.until("stopped")
    assert stopped[-1]["data"]["data"] == {"by": "api"}
    assert live.post(f"/sessions/{session_id}/resume").status_code == 200
    resumed = stream.until("resumed")
    assert int(resumed[-1]["id"]) > int(stopped[-1]["id"])

    # A client that reconnects with Last-Event-ID gets only what came after.
    again = Listening(
        live, f"/api/sessions/{session_id}/stream", headers={"Last-Event-ID": stopped[-1]["id"]}
    )
    assert [m["data"]["kind"] for m in again.until("resumed")] == ["resumed"]
    stream.close()
    again.close()


def test_streams_end_when_the_client_goes_away(live, driver):
    live.put_flow(FLOW)
    live.post("/events", json={"type": "$signup", "email": "ada@example.com"})
    with (
        httpx.Client(base_url=str(live.client.base_url), timeout=10) as client,
        client.stream("GET", "/api/sessions/1/stream", headers=live.bearer) as response,
    ):
        next(response.iter_lines())
        # The stream waits for news once it has sent what there was.
        assert eventually(lambda: waiting_streams(live) == 1)
    assert eventually(lambda: waiting_streams(live) == 0)
    assert live.get("/sessions/999/stream").status_code == 404
    assert live.client.get("/api/sessions/1/stream").status_code == 401


def test_the_activity_stream_shows_new_events_and_session_changes(live, driver):
    live.put_flow(FLOW)
    live.post("/events", json={"type": "before", "email": "old@example.com"})
    stream = Listening(live, "/api/activity/stream")
    live.post("/events", json={"type": "$signup", "email": "ada@example.com"})
    seen = stream.until("entered")
    assert seen[0]["event"] == "event"
    assert (seen[0]["data"]["type"], seen[0]["data"]["email"]) == ("$signup", "ada@example.com")
    assert seen[-1]["event"] == "timeline"
    assert (seen[-1]["data"]["flow"], seen[-1]["data"]["email"]) == (
        "onboarding",
        "ada@example.com",
    )
    assert all(m["data"].get("type") != "before" for m in seen)
    driver.run()
    assert stream.until("waiting")[-1]["data"]["step"] == "settle"
    stream.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite's streams poll
def test_on_postgresql_a_notification_wakes_the_stream_before_its_poll(live, driver, app):
    wakeups = Wakeups(app)
    wakeups.poll = 60.0  # only a notification can deliver the entry within the test
    live.web.state.wakeups = wakeups
    live.put_flow(FLOW)
    session_id = live.post("/events", json={"type": "$signup", "email": "ada@example.com"}).json()[
        "sessions_started"
    ][0]
    stream = Listening(live, f"/api/sessions/{session_id}/stream")
    stream.until("entered")
    assert eventually(lambda: waiting_streams(live) == 1 and listening(app.db, TIMELINE_CHANNEL))
    started = time.monotonic()
    driver.run()  # another writer: the worker
    stream.until("waiting", timeout=10)
    assert time.monotonic() - started < 5
    stream.close()


def test_an_activity_position_is_ascii_digits_or_nothing():
    """A resumed Activity stream's `after` (`e12.t34`); anything else starts afresh,
    never an error: `²` is a digit to `str.isdigit`, not to `int`."""
    from sluice.api.streams import activity_position

    assert activity_position("e12.t34") == (12, 34)
    for given in ("e².t1", "e1.t²", "e1.t", "e.t1", "e-1.t2", "abc", "", None, "e1.t2x"):
        assert activity_position(given) is None, given
    assert activity_position("e" + "9" * 19 + ".t1") is None  # beyond an id
