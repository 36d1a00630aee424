"""`make bench`: how fast the web UI's pages render with 100,000 visitors and
1,000,000 sessions, on SQLite and PostgreSQL.

The data is bulk-inserted straight into a fresh database (executemany on SQLite, COPY
on PostgreSQL): the example flows, visitors with three events each, sessions spread
over the flows' steps and statuses and over the last 60 days, two timeline entries per
session plus a goal for some, and an email for every fifth session (failed for a failed
session, being retried for some waiting ones). Each page is then requested in-process
(the ASGI app, no socket) after one warm-up request, and the median and slowest of
several requests are reported. The results are printed and
appended to docs/benchmarks.md.

BENCH_UI_SESSIONS and BENCH_UI_VISITORS change the scale.

The flow builder is measured in Chromium (Playwright, as the browser tests drive it)
against `sluice serve` with a flow of 100 steps: the time from the navigation to the
builder on screen, and from an edit on the canvas (a step moved with Alt+↓) to its
problems answered by the server (the `sluice:checked` event of
ui/frontend/src/builder/app.jsx). `BENCH_UI_ONLY=builder` measures only that.
"""

from __future__ import annotations

import os
import random
import re
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psycopg
import yaml
from databases import SCRATCH, on_each
from fastapi.testclient import TestClient

from sluice.api.app import create_app
from sluice.definitions.parse import load_documents
from sluice.records import FlowStatus
from sluice.service import Sluice
from sluice.settings import Settings
from sluice.store.schema import deliveries, events, sessions, timeline, visitors

SESSIONS = int(os.environ.get("BENCH_UI_SESSIONS", "1000000"))
VISITORS = int(os.environ.get("BENCH_UI_VISITORS", "100000"))
REPEAT = 7
ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "src" / "sluice" / "ui" / "examples"
RESULTS = ROOT / "docs" / "benchmarks.md"
PASSWORD = "bench"
NOW = datetime.now(UTC).replace(microsecond=0)
STATUSES = ["waiting"] * 40 + ["active"] * 3 + ["stopped"] * 2 + ["completed"] * 40
STATUSES += ["exited"] * 12 + ["failed"] * 3
HTML = "<h1>Hi {name}</h1><p>Thanks for picking the pro plan.</p><p><a href='https://x'>Go</a></p>"


def _time(moment: datetime) -> str:
    """Naive UTC, as the schema stores instants on both databases."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _json(value) -> str:
    return orjson.dumps(value).decode()


def generate(step_ids: dict[str, list[str]]):
    """Rows per table, as tuples in the column order of `COLUMNS`."""
    rng = random.Random(7)
    flows = sorted(step_ids)
    rows = {name: [] for name in COLUMNS}
    for v in range(1, VISITORS + 1):
        created = NOW - timedelta(days=60, seconds=-v)
        email = f"visitor{v}@example.com"
        rows["visitors"].append(
            (
                v,
                str(uuid.UUID(int=v)),
                email,
                email,
                _json({"first_name": f"V{v}"}),
                _json(["customer"] if v % 3 == 0 else []),
                None,
                _time(created),
                _time(created),
            )
        )
        for e in range(3):
            event_id = (v - 1) * 3 + e + 1
            date = _time(created + timedelta(minutes=e))
            rows["events"].append(
                (
                    event_id,
                    v,
                    "$signup" if e == 0 else "page_viewed",
                    _json({"plan": "pro"}),
                    None,
                    date,
                    date,
                    None,
                    0,
                    "api",
                    None,
                    0,
                )
            )
    entry_id = 0
    for s in range(1, SESSIONS + 1):
        visitor = rng.randint(1, VISITORS)
        flow = flows[s % len(flows)]
        status = rng.choice(STATUSES)
        step = rng.choice(step_ids[flow])
        started = NOW - timedelta(seconds=rng.randint(0, 60 * 86400))
        finished = (
            _time(started + timedelta(hours=1))
            if status in ("completed", "exited", "failed")
            else None
        )
        rows["sessions"].append(
            (
                s,
                visitor,
                flow,
                1,
                status,
                step,
                status == "waiting",
                "{}",
                (visitor - 1) * 3 + 1,
                0,
                0,
                None,
                None,
                None,
                None,
                None,
                1,
                None,
                None,
                _time(started),
                _time(started),
                finished,
            )
        )
        kinds = [("entered", None), ("step", step)]
        if status == "exited" and s % 2:
            kinds.append(("goal", step))
        for kind, at_step in kinds:
            entry_id += 1
            rows["timeline"].append(
                (entry_id, s, visitor, _time(started), at_step, kind, _json({"by": "bench"}))
            )
        if s % 5 == 0:
            payload = {
                "to": f"visitor{visitor}@example.com",
                "from": "Sluice <noreply@localhost>",
                "reply_to": None,
                "subject": f"Welcome, V{visitor}!",
                "html": HTML.format(name=visitor),
                "text": f"Hi {visitor}",
                "transactional": False,
                "track": True,
                "unsubscribe_url": "http://127.0.0.1:8000/u?t=x",
                "message_id": f"<{s}.welcome@localhost>",
            }
            # In trouble, for the flows list's health and the canvas: the emails of
            # failed sessions failed, and one in ten of waiting sessions is retried.
            state, attempts, next_at, error = "outbox", 0, None, None
            if status == "failed":
                state, attempts, error = "failed", 8, "550 5.1.1 No such mailbox"
            elif status == "waiting" and s % 50 == 0:
                state, attempts, error = "pending", 2, "cannot connect to smtp: refused"
                next_at = _time(NOW + timedelta(hours=1))
            rows["deliveries"].append(
                (
                    s // 5,
                    s,
                    visitor,
                    flow,
                    step,
                    "email",
                    payload["message_id"],
                    state,
                    _json(payload),
                    attempts,
                    8,
                    next_at,
                    error,
                    None,
                    _time(started),
                    finished or _time(started),
                )
            )
    return rows


COLUMNS = {
    "visitors": [c.name for c in visitors.columns],
    "events": [c.name for c in events.columns],
    "sessions": [c.name for c in sessions.columns],
    "timeline": [c.name for c in timeline.columns],
    "deliveries": [c.name for c in deliveries.columns],
}


def bulk_insert(app: Sluice, rows) -> None:
    if app.db.is_sqlite:
        raw = app.db.engine.raw_connection()
        try:
            raw.cursor().execute("PRAGMA synchronous = OFF")  # a bulk load; no power cut here
            for table, columns in COLUMNS.items():
                marks = ", ".join("?" * len(columns))
                raw.cursor().executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows[table]
                )
            raw.commit()
            raw.cursor().execute("ANALYZE")
        finally:
            raw.close()
        return
    url = app.db.engine.url.render_as_string(hide_password=False).replace("+psycopg", "")
    with psycopg.connect(url) as conn:
        for table, columns in COLUMNS.items():
            with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows[table]:
                    copy.write_row(row)
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


SEARCHES = {
    "search, part of the email `?q=tor4321`": "/visitors?q=tor4321",
    "search, part matching all, page 1,000 `?q=example&page=1000`": (
        "/visitors?q=example&page=1000"
    ),
    "search, part matching none `?q=nobody`": "/visitors?q=nobody",
    "search by field `?q=first_name:v77777`": "/visitors?q=first_name:v77777",
    "search by tag, page 2 `?tag=customer&page=2`": "/visitors?tag=customer&page=2",
    "search, part + field + tag `?q=visitor9 first_name:v99999&tag=customer`": (
        "/visitors?q=visitor9+first_name:v99999&tag=customer"
    ),
}
"""The visitor search (docs/ui.md): each is a count and a page of 50 over all visitors.
`BENCH_UI_ONLY=search` measures only these, on SQLite."""


def pages(rows) -> dict[str, str]:
    visitor = rows["sessions"][SESSIONS // 2][1]
    email = f"visitor{visitor}@example.com"
    return {
        "flows list `/`": "/",
        "flow canvas `/flows/onboarding`": "/flows/onboarding",
        "flow editor `?tab=edit`": "/flows/onboarding?tab=edit",
        "flow versions `?tab=versions`": "/flows/onboarding?tab=versions",
        "visitor search `/visitors?q=visitor12`": "/visitors?q=visitor12",
        **SEARCHES,
        "visitor profile `/visitors/{email}`": f"/visitors/{email}",
        "visitor Flows tab": f"/visitors/{email}?tab=flows",
        "visitor Emails tab": f"/visitors/{email}?tab=emails",
        "session `/sessions/{id}`": f"/sessions/{SESSIONS // 2}",
        "outbox `/outbox`": "/outbox",
        "outbox of one visitor": f"/outbox?email={email}",
        "activity `/activity`": "/activity",
        "flows list figures, JSON (`/ui/flows/figures`)": "/ui/flows/figures",
        "canvas counts, JSON (`/ui/flows/{key}/live`)": "/ui/flows/onboarding/live",
    }


def measure(app: Sluice, paths: dict[str, str]) -> dict[str, tuple[float, float]]:
    with TestClient(create_app(app)) as client:
        page = client.get("/login").text
        token = re.search(r'name="login_token" value="([^"]+)"', page).group(1)
        client.post(
            "/login", data={"username": "admin", "password": PASSWORD, "login_token": token}
        )
        timings = {}
        for name, path in paths.items():
            assert client.get(path).status_code == 200, path  # warm-up
            samples = []
            for _ in range(REPEAT):
                started = time.perf_counter()
                response = client.get(path)
                samples.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, path
            timings[name] = (statistics.median(samples), max(samples))
    # The canvas's per-step statistics, which its JSON reuses for 5 s, read afresh.
    samples = []
    for _ in range(3):
        started = time.perf_counter()
        app.flow_stats("onboarding")
        samples.append((time.perf_counter() - started) * 1000)
    timings["canvas statistics, uncached (`Sluice.flow_stats`)"] = (
        statistics.median(samples),
        max(samples),
    )
    return timings


def run(url: str) -> dict[str, tuple[float, float]]:
    settings = Settings(database_url=url, signing_key="bench", admin_password=PASSWORD)
    app = Sluice(settings)
    app.upgrade()
    documents = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        documents += [(path.name, d) for d in load_documents(path.read_text(), path.name)]
    report = app.apply(documents)
    step_ids = {}
    with app.db.read() as conn:
        for key in report.flows:
            step_ids[key] = app.catalog.flow(conn, key, 1).tree.ids_in_order()
    for key in report.flows:
        app.set_flow_status(key, FlowStatus.ON)
    started = time.perf_counter()
    rows = generate(step_ids)
    bulk_insert(app, rows)
    print(f"  {url.split(':')[0]}: data inserted in {time.perf_counter() - started:.0f} s")
    wanted = pages(rows)
    if os.environ.get("BENCH_UI_ONLY") == "search":
        wanted = SEARCHES
    try:
        return measure(app, wanted)
    finally:
        app.close()


def report(results: dict[str, dict[str, tuple[float, float]]]) -> str:
    names = list(next(iter(results.values())))
    lines = [
        f"\n## Web UI pages ({VISITORS:,} visitors, {SESSIONS:,} sessions)\n",
        f"`bench/ui.py`, {NOW:%Y-%m-%d}: server-side time of each page in milliseconds,",
        f"median and slowest of {REPEAT} requests after a warm-up.\n",
        "| page | " + " | ".join(f"{db} median | {db} max" for db in results) + " |",
        "|---|" + "---:|---:|" * len(results),
    ]
    for name in names:
        cells = " | ".join(
            f"{results[db][name][0]:.1f} | {results[db][name][1]:.1f}" for db in results
        )
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines) + "\n"


BUILDER_EDITS = 20


def hundred_steps() -> str:
    """A flow of 100 steps: 25 times an email, a wait, and an `if` holding a tag."""
    steps = []
    for i in range(25):
        steps += [
            {"id": f"email_{i}", "email": {"subject": f"Message {i}", "html": f"<p>{i}</p>"}},
            {"id": f"wait_{i}", "wait": "1d"},
            {
                "id": f"if_{i}",
                "if": f'visitor.tags contains "t{i}"',
                "then": [{"id": f"tag_{i}", "tag": {"add": [f"seen{i}"]}}],
            },
        ]
    flow = {"key": "hundred", "name": "Hundred", "trigger": {"event": "go"}, "steps": steps}
    return yaml.safe_dump(flow, sort_keys=False)


EDIT = """async (id) => {
  const box = document.querySelector(`[data-step="${id}"]`);
  const started = performance.now();
  const checked = new Promise((resolve) =>
    window.addEventListener("sluice:checked", resolve, { once: true }));
  const keys = { key: "ArrowDown", altKey: true, bubbles: true };
  box.dispatchEvent(new KeyboardEvent("keydown", keys));
  await checked;
  return performance.now() - started;
}"""


def builder() -> dict[str, tuple[float, float]]:
    """The builder in Chromium on a flow of 100 steps: opening and re-validating."""
    import sys
    import tempfile

    sys.path.insert(0, str(ROOT / "tests"))
    from ui_support import chromium, log_in, serve  # the browser tests' own setup

    with tempfile.TemporaryDirectory() as tmp, serve(Path(tmp) / "bench.db") as (base, settings):
        app = Sluice(settings)
        app.apply([("hundred.yaml", d) for d in load_documents(hundred_steps(), "hundred.yaml")])
        app.close()
        with chromium() as browser:
            page = browser.new_page(base_url=base, viewport={"width": 1440, "height": 1000})
            log_in(page)
            opened = []
            for _ in range(REPEAT):
                page.goto("/flows/hundred?tab=build")
                page.wait_for_selector('[data-step="tag_24"]')
                opened.append(
                    page.evaluate(
                        "performance.getEntriesByName('sluice:builder-ready')[0].startTime"
                    )
                )
            page.wait_for_selector("[data-builder-status]:text('Valid')")
            edits = [page.evaluate(EDIT, "email_0") for _ in range(BUILDER_EDITS)]
    return {
        "builder opens a flow of 100 steps (navigation to canvas on screen)": (
            statistics.median(opened),
            max(opened),
        ),
        "builder edit re-validated (Alt+↓ to problems answered)": (
            statistics.median(edits),
            max(edits),
        ),
    }


def builder_report(timings: dict[str, tuple[float, float]]) -> str:
    lines = [
        "\n## Flow builder in Chromium (a flow of 100 steps)\n",
        f"`bench/ui.py`, {NOW:%Y-%m-%d}: milliseconds in the browser, median and slowest of "
        f"{REPEAT} page loads and {BUILDER_EDITS} edits (targets: 300 ms and 100 ms).\n",
        "| measure | median | max |",
        "|---|---:|---:|",
        *(f"| {name} | {median:.1f} | {top:.1f} |" for name, (median, top) in timings.items()),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    only = os.environ.get("BENCH_UI_ONLY")
    text = ""
    if only != "builder":
        results = on_each(run, {"SQLite": SCRATCH["SQLite"]} if only == "search" else SCRATCH)
        text = report(results)
    if only in (None, "builder"):
        text += builder_report(builder())
    print(text)
    if only != "search":
        with RESULTS.open("a") as out:
            out.write(text)


if __name__ == "__main__":
    main()
