"""The `sluice` command as a user runs it: real processes, a real database file."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import httpx
import pytest

from conftest import EXAMPLES, fresh_database
from sluice.cli import main
from sluice.service import Sluice
from sluice.settings import Settings

SLUICE = str(Path(sys.executable).parent / "sluice")


BOTH_DATABASES = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture(params=["sqlite"])
def database_url(request) -> str:
    """The CLI is one program on both databases (the service under it is tested on
    both), and each command here starts a process: so its tests run on SQLite, and
    those marked BOTH_DATABASES — a newcomer's whole walk, what names the database —
    on PostgreSQL too."""
    return fresh_database(request)


@pytest.fixture
def cli(tmp_path, database_url):
    env = {**os.environ, "SLUICE_DATABASE_URL": database_url, "SLUICE_SIGNING_KEY": "k"}

    def run(*args: str, expect: int = 0) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [SLUICE, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == expect, done.stderr + done.stdout
        return done

    run.env = env
    return run


def as_json(done: subprocess.CompletedProcess):
    return json.loads(done.stdout)


@BOTH_DATABASES
def test_a_new_user_applies_the_examples_and_watches_a_session(cli, tmp_path):
    flows_dir = tmp_path / "flows"
    shutil.copytree(EXAMPLES, flows_dir)
    assert as_json(cli("flows", "validate", str(flows_dir), "--json")) == []
    applied = cli("flows", "apply", str(flows_dir))
    assert "flow onboarding: saved v1" in applied.stdout
    assert "template nudge: saved v1" in applied.stdout
    flows = as_json(cli("flows", "list", "--json"))
    assert {f["key"]: f["status"] for f in flows} == {
        "abandoned-cart": "off",
        "onboarding": "off",
        "trial-ending": "off",
    }
    cli("flows", "on", "onboarding")
    sent = as_json(
        cli(
            "send",
            "$signup",
            "--email",
            "ada@example.com",
            "--details",
            '{"plan": "pro"}',
            "--fields",
            '{"first_name": "Ada"}',
            "--json",
        )
    )
    assert sent["accepted"] == 1 and len(sent["sessions_started"]) == 1
    sid = str(sent["sessions_started"][0])
    session = as_json(cli("sessions", "show", sid, "--json"))
    assert session["flow"] == "onboarding" and session["status"] == "active"
    listed = as_json(cli("sessions", "--email", "ada@example.com", "--json"))
    assert [s["id"] for s in listed] == [int(sid)]
    visitor = as_json(cli("visitors", "show", "ada@example.com", "--json"))
    assert visitor["fields"] == {"first_name": "Ada"} and visitor["sessions"][0]["id"] == int(sid)
    assert "onboarding" in cli("flows", "stats", "onboarding").stdout
    stopped = as_json(cli("sessions", "stop", sid, "--json"))
    assert stopped["status"] == "stopped"
    assert as_json(cli("sessions", "resume", sid, "--json"))["status"] == "active"
    off = as_json(cli("flows", "off", "onboarding", "--json"))
    assert off["status"] == "off"
    assert as_json(cli("sessions", "show", sid, "--json"))["paused"] is True
    changes = as_json(cli("flows", "changes", "onboarding", "--json"))
    assert [c["action"] for c in changes] == ["version", "on", "off"]


def test_sessions_show_tells_the_timeline_in_sentences_and_json_is_unchanged(
    cli, tmp_path, database_url
):
    cli("flows", "apply", str(EXAMPLES))
    cli("flows", "on", "onboarding")
    sent = as_json(
        cli(
            "send",
            "$signup",
            "--email",
            "ada@example.com",
            "--fields",
            '{"first_name": "Ada"}',
            "--json",
        )
    )
    sid = sent["sessions_started"][0]
    subprocess_worker_pass(cli)
    cli("sessions", "stop", str(sid))
    lines = cli("sessions", "show", str(sid)).stdout.splitlines()
    assert lines[0] == f"session {sid}: onboarding v1 for ada@example.com: stopped at settle"
    timeline = lines[1:]
    when = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"
    assert all(re.match(rf"  {when}  ", line) for line in timeline), timeline
    told = [re.sub(rf"^  {when}  ", "", line) for line in timeline]
    origin = as_json(cli("sessions", "show", str(sid), "--json"))["origin_event"]["id"]
    # Plain text: names in quotes, no asterisks or backticks; the email's link as its path.
    assert told[0] == f"Entered the flow “onboarding” (v1), started by $signup (event {origin})"
    assert re.fullmatch(
        r"welcome  Put “Welcome, Ada!” to ada@example.com in the outbox, unsent: no SMTP server "
        r"is set up \(/outbox\?email=ada%40example\.com&id=\d+\)",
        told[1],
    )
    # stopped: the wait is no longer promised
    assert re.fullmatch(rf"settle  Was waiting until {when} \(then stopped\)", told[2])
    assert told[3] == "settle  Stopped by cli; it stays here until resumed"
    assert not any("{" in line for line in told)  # no raw JSON
    # --json prints the session as the API does, timeline entries and all.
    app = Sluice(Settings(database_url=database_url, signing_key="k"))
    try:
        assert as_json(cli("sessions", "show", str(sid), "--json")) == app.session(sid)
    finally:
        app.close()


def test_an_invalid_definition_lists_every_problem_and_saves_nothing(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "key: bad\ntrigger: {event: go}\nsteps:\n"
        "  - {id: welcome, email: {subject: 'Hi {{ visitor.name }', html: x}}\n"
        "  - {id: welcome, wait: 2 days}\n"
        "  - start_flow: onbaording\n"
    )
    done = cli("flows", "apply", str(bad), expect=1)
    assert "steps[1].wait: invalid duration '2 days' (use 2d)" in done.stderr
    assert "steps[1].id: duplicate id 'welcome'" in done.stderr
    assert "steps[2].start_flow: unknown flow 'onbaording'" in done.stderr
    assert "steps[0].email.subject: Liquid syntax error" in done.stderr
    problems = as_json(cli("flows", "validate", str(bad), "--json", expect=1))
    assert len(problems) == 4 and all(set(p) == {"loc", "msg"} for p in problems)
    assert as_json(cli("flows", "list", "--json")) == []


def test_user_mistakes_are_one_line_errors(cli):
    for args, message in [
        (("flows", "on", "nope"), "unknown flow 'nope'"),
        (("sessions", "show", "999"), "no session 999"),
        (("visitors", "show", "who@example.com"), "no visitor"),
        (("send", "go", "--email", "not-an-email"), "not an email address"),
        (("send", "go", "--email", "a@bü-.example"), "is not a valid domain name"),
        (("send", "go", "--email", "a@example.com", "--details", "{oops"), "not valid JSON"),
    ]:
        done = cli(*args, expect=1)
        assert message in done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_the_cli_finds_a_visitor_by_either_form_of_a_unicode_domain(cli):
    cli("send", "$signup", "--email", "anna@bücher.example")
    cli("send", "$visit", "--email", "Anna@xn--bcher-kva.example")
    shown = as_json(cli("visitors", "show", "ANNA@BÜCHER.example", "--json"))
    assert shown["email"] == "anna@xn--bcher-kva.example"
    assert sorted(e["type"] for e in shown["events"]) == ["$signup", "$visit"]
    cli("visitors", "erase", "anna@xn--bcher-kva.example")
    assert "no visitor" in cli("visitors", "show", "anna@bücher.example", expect=1).stderr


def test_a_sender_address_with_a_line_break_is_a_one_line_error(cli, tmp_path):
    env = {**cli.env, "SLUICE_MAIL_FROM": "Shop <a@b.example>\nBcc: c@d.example"}
    done = subprocess.run(
        [SLUICE, "flows", "list"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert done.stderr == (
        "error: SLUICE_MAIL_FROM: contains a line break: 'Shop <a@b.example>\\nBcc: c@d.example'\n"
    )


def test_dry_run_shows_the_blast_radius_and_saves_nothing(cli, tmp_path):
    flow = tmp_path / "f.yaml"
    flow.write_text(
        "key: f\ntrigger: {event: go}\nsteps:\n  - {id: a, wait: 1d}\n  - {id: b, wait: 1d}\n"
    )
    cli("flows", "apply", str(flow))
    cli("flows", "on", "f")
    cli("send", "go", "--email", "a@example.com")
    cli("send", "go", "--email", "b@example.com")
    subprocess_worker_pass(cli)
    flow.write_text(
        "key: f\ntrigger: {event: go}\nsteps:\n  - {id: a, wait: 2d}\n  - {id: b, wait: 1d}\n"
    )
    done = cli("flows", "apply", str(flow), "--dry-run")
    assert "f: 2 session(s) at a stay there" in done.stdout  # its wait changed, not its place
    flow.write_text("key: f\ntrigger: {event: go}\nsteps:\n  - {id: b, wait: 1d}\n")
    done = cli("flows", "apply", str(flow), "--dry-run")
    assert "flow f: would save v2" in done.stdout
    assert "f: 2 session(s) at a → b" in done.stdout
    assert as_json(cli("flows", "show", "f", "--json"))["version"] == 1


def test_dry_run_says_how_many_sessions_a_shorter_wait_wakes_and_what_they_send(
    cli, tmp_path, driver
):
    # Sessions that began their 2-day wait an hour ago (the CLI runs on the real clock).
    driver.clock.set(datetime.now(UTC) - timedelta(hours=1))
    driver.apply_example("nudge.yaml", "onboarding.yaml")
    for email in ("a@example.com", "b@example.com", "c@example.com"):
        driver.send("$signup", email)
    flow = tmp_path / "onboarding.yaml"
    flow.write_text((EXAMPLES / "onboarding.yaml").read_text().replace("wait: 2d", "wait: 1m"))
    done = cli("flows", "apply", str(flow), "--dry-run")
    assert (
        "  onboarding: 3 sessions waiting at settle (2d → 1m): 3 wake at once and send "
        "email from template nudge (nudge: 3, maybe).\n"
    ) in done.stdout
    assert (
        "  onboarding: warning: Saving wakes 3 sessions at once, which then send 3 emails "
        "and 0 webhooks right away.\n"
    ) in done.stdout
    report = as_json(cli("flows", "apply", str(flow), "--dry-run", "--json"))
    assert report["impact"]["onboarding"]["sends_at_once"] == {
        "sessions": 3,
        "emails": 3,
        "webhooks": 0,
    }
    assert as_json(cli("flows", "show", "onboarding", "--json"))["version"] == 1


def subprocess_worker_pass(cli) -> None:
    """Run the worker briefly as its own process so sessions reach their waits."""
    process = subprocess.Popen([SLUICE, "worker"], env=cli.env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            sessions = as_json(cli("sessions", "--json"))
            if sessions and all(s["status"] == "waiting" for s in sessions):
                break
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0


def test_simulate_prints_the_timeline_and_stores_nothing(cli, tmp_path):
    script = tmp_path / "script.yaml"
    script.write_text(
        "visitor: {email: sim@example.com, fields: {first_name: Sim}}\n"
        "events:\n"
        "  - {at: '+0s', type: checkout_started, details: {cart_id: c1, items: []}}\n"
        "  - {at: '+1h', type: $purchase, details: {cart_id: c1}}\n"
    )
    result = as_json(
        cli("simulate", str(EXAMPLES / "abandoned-cart.yaml"), "--events", str(script), "--json")
    )
    [session] = result["sessions"]
    kinds = [e["kind"] for e in session["timeline"]]
    assert kinds[:4] == ["entered", "step", "waiting", "event_received"]
    assert session["status"] == "exited"
    assert result["visitor"]["tags"] == ["customer"]
    assert as_json(cli("flows", "list", "--json")) == []
    text = cli("simulate", str(EXAMPLES / "abandoned-cart.yaml"), "--events", str(script)).stdout
    assert "Received $purchase, the event it was waiting for" in text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@BOTH_DATABASES
def test_serve_answers_health_checks_and_runs_the_embedded_worker(cli, tmp_path):
    flow = tmp_path / "f.yaml"
    flow.write_text("key: f\ntrigger: {event: go}\nsteps: [{tag: {add: [served]}}]\n")
    cli("flows", "apply", str(flow))
    cli("flows", "on", "f")
    port = free_port()
    server = subprocess.Popen(
        [SLUICE, "serve", "--port", str(port)], env=cli.env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert "Sluice is running at" in server.stdout.readline()
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        assert httpx.get(f"{base}/readyz").json() == {"status": "ok"}
        cli("send", "go", "--email", "s@example.com")
        for _ in range(100):
            if as_json(cli("visitors", "show", "s@example.com", "--json"))["tags"] == ["served"]:
                break
            time.sleep(0.1)
        assert as_json(cli("visitors", "show", "s@example.com", "--json"))["tags"] == ["served"]
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl-C: drains and exits 0, no "Aborted!"
        assert server.wait(timeout=30) == 0
    assert "Aborted" not in server.stdout.read()


def test_send_prints_the_ids_of_the_sessions_it_started(cli, tmp_path):
    flows = tmp_path / "flows.yaml"
    flows.write_text(
        "key: first\ntrigger: {event: go}\nsteps: [{wait: 1d}]\n---\n"
        "key: second\ntrigger: {event: go}\nsteps: [{wait: 1d}]\n"
    )
    cli("flows", "apply", str(flows))
    cli("flows", "on", "first")
    cli("flows", "on", "second")
    done = cli("send", "go", "--email", "ada@example.com")
    ids = sorted(s["id"] for s in as_json(cli("sessions", "--json")))
    assert len(ids) == 2
    assert done.stdout == f"accepted; 2 sessions started: {ids[0]}, {ids[1]}\n"
    sent = as_json(cli("send", "go", "--email", "bob@example.com", "--json"))
    assert sent["accepted"] == 1 and len(sent["sessions_started"]) == 2
    bobs = as_json(cli("sessions", "--email", "bob@example.com", "--json"))
    assert sorted(sent["sessions_started"]) == sorted(s["id"] for s in bobs)
    cli("flows", "off", "second")
    [one] = as_json(cli("send", "go", "--email", "cy@example.com", "--json"))["sessions_started"]
    assert cli("send", "other", "--email", "cy@example.com").stdout == (
        "accepted; no sessions started\n"
    )
    assert as_json(cli("sessions", "--email", "cy@example.com", "--json"))[0]["id"] == one


def _leaf_commands(group: click.Group, prefix: str = ""):
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            if command.invoke_without_command:
                yield path, command
            yield from _leaf_commands(command, path + " ")
        else:
            yield path, command


def test_every_command_that_prints_data_takes_json(cli):
    without = {
        path
        for path, command in _leaf_commands(main)
        if not any("--json" in getattr(p, "opts", ()) for p in command.params)
    }
    # These print a confirmation or run a server: no data to give as JSON.
    assert without == {"db upgrade", "admin set-password", "serve", "worker"}
    cli("send", "go", "--email", "ada@example.com", "--fields", '{"plan": "pro"}')
    exported = as_json(cli("visitors", "export", "ada@example.com", "--json"))
    assert exported["email"] == "ada@example.com" and exported["fields"] == {"plan": "pro"}
    assert as_json(cli("webhook-secret", "--json"))["webhook_secret"].startswith("whsec_")
    first = as_json(cli("keys", "rotate", "--json"))["secret_key"]
    second = as_json(cli("keys", "rotate", "--json"))["secret_key"]
    assert first != second and len(second) >= 32
    assert set(as_json(cli("keys", "show", "--json"))) == {"site_uuid", "publishable_key"}


def shown_database(database_url: str) -> str:
    if database_url.startswith("sqlite:///"):
        return f"sqlite:///{Path(database_url.removeprefix('sqlite:///')).resolve()}"
    return database_url


@BOTH_DATABASES
def test_a_command_that_finds_nothing_names_its_database(cli, database_url):
    where = shown_database(database_url)
    listed = cli("flows", "list")
    assert listed.stdout == ""
    assert listed.stderr == f"no flows in {where} (add some with: sluice flows apply FILE)\n"
    assert as_json(cli("flows", "list", "--json")) == []
    sessions = cli("sessions", "--json")
    assert as_json(sessions) == [] and sessions.stderr == f"no sessions in {where}\n"
    sent = cli("send", "go", "--email", "ada@example.com")
    assert sent.stdout == "accepted; no sessions started\n"
    assert sent.stderr == f"no flows in {where} (add some with: sluice flows apply FILE)\n"
    filtered = cli("sessions", "--email", "nobody@example.com")
    assert filtered.stderr == f"no matching sessions in {where}\n"
    for args, message in [
        (("flows", "show", "nope"), "unknown flow 'nope'"),
        (("sessions", "show", "999"), "no session 999"),
        (("visitors", "export", "who@example.com", "--json"), "no visitor with email"),
    ]:
        done = cli(*args, expect=1)
        assert done.stderr.startswith(f"error: {message}")
        assert done.stderr.endswith(f" in {where}\n")


@pytest.mark.parametrize("session_id", ["9223372036854775808", "99999999999999999999", "0"])
@pytest.mark.parametrize("action", ["show", "stop", "resume", "retry"])
def test_a_session_id_beyond_64_bits_is_a_missing_session(cli, database_url, action, session_id):
    """Neither database can hold such an id (SQLite would raise OverflowError,
    PostgreSQL a DataError): it names no session."""
    done = cli("sessions", action, session_id, expect=1)
    assert done.stderr == f"error: no session {session_id} in {shown_database(database_url)}\n"


def test_a_newcomer_in_another_directory_is_told_which_database_is_empty(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "SLUICE_DATABASE_URL"}
    done = subprocess.run(
        [SLUICE, "flows", "list"], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0
    database = elsewhere.resolve() / "sluice.db"
    assert done.stderr == (
        f"no flows in sqlite:///{database} (add some with: sluice flows apply FILE)\n"
    )
    assert database.exists()


def modules_loaded(env: dict, cwd: Path, *args: str) -> set[str]:
    """The top-level packages `sluice ARGS` has imported by the time it exits."""
    record = cwd / "modules.txt"
    code = (
        "import atexit, sys\n"
        "record = sys.argv.pop(1)\n"
        "atexit.register(lambda: open(record, 'w').write("
        "' '.join({m.split('.')[0] for m in sys.modules})))\n"
        "from sluice.cli import main\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(record), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return set(record.read_text().split())


def test_help_loads_no_database_web_or_template_library(tmp_path):
    loaded = modules_loaded(dict(os.environ), tmp_path, "--help")
    heavy = {"fastapi", "uvicorn", "aiohttp", "liquid", "alembic", "sqlalchemy", "rich"}
    assert loaded & (heavy | {"pydantic", "psycopg", "yaml"}) == set()


def test_send_loads_the_database_but_not_the_web_stack_or_migrations(cli, tmp_path):
    flow = tmp_path / "f.yaml"
    flow.write_text("key: f\ntrigger: {event: go}\nsteps: [{wait: 1d}]\n")
    cli("flows", "apply", str(flow))
    cli("flows", "on", "f")
    loaded = modules_loaded(cli.env, tmp_path, "send", "go", "--email", "a@example.com")
    assert {"sqlalchemy", "liquid"} <= loaded  # matching triggers needs the parsed flows
    web = {"fastapi", "starlette", "uvicorn", "aiohttp", "aiosmtplib", "prometheus_client"}
    assert loaded & (web | {"alembic", "rich", "html2text"}) == set()
    assert as_json(cli("sessions", "--json"))[0]["email"] == "a@example.com"


def test_serve_on_a_port_in_use_is_one_line_and_exits(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [SLUICE, "serve", "--port", str(port)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr == (
        f"error: port {port} on 127.0.0.1 is in use; choose another with --port\n"
    )
    assert done.stdout == ""


def test_simulate_counts_offsets_from_the_scripts_start(cli, tmp_path):
    script = tmp_path / "script.yaml"
    script.write_text(
        "visitor: {email: sim@example.com}\n"
        "events:\n"
        "  - {at: '2026-05-01T09:00:00Z', type: checkout_started, details: {cart_id: c1}}\n"
        "  - {at: '+3h', type: $purchase, details: {cart_id: c1}}\n"
    )
    flow = str(EXAMPLES / "abandoned-cart.yaml")
    result = as_json(cli("simulate", flow, "--events", str(script), "--json"))
    [session] = result["sessions"]
    at = {entry["kind"]: entry["at"] for entry in session["timeline"]}
    assert at["entered"] == "2026-05-01T09:00:00+00:00"
    assert at["event_received"] == "2026-05-01T12:00:00+00:00"
    script.write_text(
        "visitor: {email: sim@example.com}\n"
        "events:\n"
        "  - {at: '+1d', type: checkout_started}\n"
        "  - {at: '2026-05-01T09:00:00Z', type: $purchase}\n"
    )
    done = cli("simulate", flow, "--events", str(script), expect=1)
    assert done.stderr.startswith(
        "error: events[1].at: 2026-05-01T09:00:00Z is before events[0] (2026-05-02T09:00:00Z)"
    )
    assert len(done.stderr.splitlines()) == 1


def test_a_database_of_a_newer_sluice_is_one_line(tmp_path):
    env = {**os.environ, "SLUICE_DATABASE_URL": f"sqlite:///{tmp_path}/sluice.db"}
    run = functools.partial(subprocess.run, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run([SLUICE, "db", "upgrade"]).returncode == 0
    with sqlite3.connect(tmp_path / "sluice.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    done = run([SLUICE, "flows", "list"])
    assert done.returncode == 1
    assert done.stderr.startswith("error: the database is at schema revision 9999, newer than")
    assert len(done.stderr.splitlines()) == 1


def test_definitions_beyond_the_limits_are_one_line_errors_without_traceback(cli, tmp_path):
    laughs = tmp_path / "laughs.yaml"
    laughs.write_text(
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
        + "".join(
            f"{b}: &{b} [{','.join([f'*{a}'] * 9)}]\n"
            for a, b in zip("abcdefgh", "bcdefghi", strict=True)
        )
        + "key: laughs\ntrigger: {event: go}\nsteps: [{tag: {add: [*i]}}]\n"
    )
    deep_yaml = tmp_path / "deep.yaml"
    deep_yaml.write_text("key: deep\ntrigger: {event: go}\nsteps: [{wait: 1d}]\nx: " + "[" * 500)
    deep_json = tmp_path / "deep.json"
    deep_json.write_text('{"key": "deep", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    huge = tmp_path / "huge.yaml"
    huge.write_text("key: huge\ntrigger: {event: go}\nsteps:\n" + "  - tag: {add: [a]}\n" * 80_000)
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(
        "key: bomb\ntrigger: {event: go, if: '" + " and ".join(["visitor.vip"] * 500) + "'}\n"
        "steps:\n  - webhook: {url: 'https://example.com', retries: {backoff: 900000000d}}\n"
        "  - wait: 3000000d\n"
    )
    for path, lines in [
        (
            laughs,
            [
                "error: laughs.yaml: YAML anchor or alias at 1:4: anchors (&name) and aliases "
                "(*name) are not accepted in definitions; write the value out"
            ],
        ),
        (deep_yaml, ["error: deep.yaml: YAML nested more than 64 levels deep at 4:"]),
        (deep_json, ["error: deep.json: nested more than 64 levels deep (at most 64)"]),
        (huge, ["error: huge.yaml: the text is 1.5 MiB; at most 1 MiB can be read at once"]),
        (
            bomb,
            [
                "error: trigger.if: Liquid syntax error at 1:",
                "error: steps[0].webhook.retries.backoff: duration '900000000d' is too long: "
                "at most 3650d (10 years)",
                "error: steps[1].wait: duration '3000000d' is too long: at most 3650d (10 years)",
            ],
        ),
    ]:
        for command, last in (("validate", ""), ("apply", "; nothing was saved")):
            done = cli("flows", command, str(path), expect=1)
            errors = done.stderr.strip().splitlines()
            assert "Traceback" not in done.stderr
            assert errors[-1] == f"{len(lines)} problem(s){last}"
            assert [e[: len(line)] for e, line in zip(errors, lines, strict=False)] == lines
            assert len(errors) == len(lines) + 1
    assert as_json(cli("flows", "list", "--json")) == []


def test_a_definition_file_that_is_not_utf8_is_a_one_line_error(cli, tmp_path):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"key: x\n\xff\xfe")
    done = cli("flows", "validate", str(binary), expect=1)
    assert done.stderr.splitlines() == [
        "error: binary.yaml: not UTF-8 text (byte 0xff at offset 7)",
        "1 problem(s)",
    ]


def test_a_database_url_that_is_a_plain_path_is_a_sqlite_file(tmp_path):
    (tmp_path / "x").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "SLUICE_DATABASE_URL"}
    run = functools.partial(subprocess.run, cwd=tmp_path, capture_output=True, text=True)
    absolute = tmp_path / "x" / "sluice.db"
    done = run([SLUICE, "--database-url", str(absolute), "flows", "list"], env=env)
    assert done.returncode == 0, done.stderr
    assert done.stderr == (
        f"no flows in sqlite:///{absolute} (add some with: sluice flows apply FILE)\n"
    )
    assert absolute.exists()
    done = run([SLUICE, "flows", "list"], env={**env, "SLUICE_DATABASE_URL": "relative.db"})
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(f"no flows in sqlite:///{tmp_path.resolve()}/relative.db ")
    assert (tmp_path / "relative.db").exists()
    assert not (tmp_path / "sluice.db").exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "mysql://u@h/db",
            "unsupported scheme 'mysql' (use a file path, sqlite:///PATH or postgresql://…)",
        ),
        ("postgresql://u:secret@h:port/db", "not a valid URL: invalid literal for int()"),
    ],
)
@pytest.mark.parametrize("command", [("flows", "list"), ("serve",), ("worker",)])
def test_an_unusable_database_url_is_one_line_naming_the_setting(tmp_path, url, message, command):
    for args, env in [
        ([SLUICE, "--database-url", url, *command], dict(os.environ)),
        ([SLUICE, *command], {**os.environ, "SLUICE_DATABASE_URL": url}),
    ]:
        done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 1
        assert done.stderr.startswith(f"error: SLUICE_DATABASE_URL: {message}")
        assert len(done.stderr.splitlines()) == 1 and "secret" not in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "command",
    [("flows", "list"), ("db", "upgrade"), ("send", "go", "--email", "a@example.com"), ("worker",)],
)
def test_an_unreachable_database_ends_in_one_line_naming_it(tmp_path, command):
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"postgresql://ada:secret@127.0.0.1:{port}/sluice"
    env = {**os.environ, "SLUICE_DATABASE_URL": url}
    done = subprocess.run(
        [SLUICE, *command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "secret" not in done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"error: cannot reach the database at postgresql://ada:***@127.0.0.1:{port}/sluice: "
        "connection refused"
    )


def test_serve_puts_its_own_port_in_email_links(cli, tmp_path):
    flow = tmp_path / "f.yaml"
    flow.write_text(
        "key: f\ntrigger: {event: go}\nsteps: [{id: hi, email: {subject: Hi, html: x}}]\n"
    )
    cli("flows", "apply", str(flow))
    cli("flows", "on", "f")
    port = free_port()
    env = {k: v for k, v in cli.env.items() if k != "SLUICE_PUBLIC_URL"}
    server = subprocess.Popen(
        [SLUICE, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout.readline() == f"Sluice is running at http://127.0.0.1:{port}/\n"
        cli("send", "go", "--email", "s@example.com")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            messages = as_json(cli("visitors", "export", "s@example.com"))["messages"]
            if messages:
                break
            time.sleep(0.1)
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    [email] = messages
    assert email["payload"]["unsubscribe_url"].startswith(f"http://127.0.0.1:{port}/u?t=")


ADA = (
    "visitor: {email: ada@example.com, fields: {first_name: Ada}}\n"
    "events:\n"
    "  - {at: '+0s', type: $signup, details: {plan: pro}}\n"
    "  - {at: '+3d', type: completed_setup}\n"
)


def test_simulate_without_a_database_creates_none_and_uses_the_files_given(tmp_path):
    script = tmp_path / "ada.yaml"
    script.write_text(ADA)
    env = {k: v for k, v in os.environ.items() if k != "SLUICE_DATABASE_URL"}
    run = functools.partial(subprocess.run, cwd=tmp_path, env=env, capture_output=True, text=True)
    done = run([SLUICE, "simulate", str(EXAMPLES / "onboarding.yaml"), "--events", str(script)])
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "error: steps[2].else[0].email.template: unknown template 'nudge' (give its file too, "
        "e.g. sluice simulate DIR, or apply it first)",
        "1 problem(s)",
    ]
    done = run([SLUICE, "simulate", str(EXAMPLES), "--events", str(script), "--json"])
    assert done.returncode == 0, done.stderr
    sessions = json.loads(done.stdout)["sessions"]
    onboarding = next(s for s in sessions if s["flow"] == "onboarding")
    assert onboarding["status"] == "completed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ada.yaml"]  # no sluice.db


@BOTH_DATABASES
def test_simulate_reads_the_templates_stored_and_changes_nothing(cli, tmp_path, database_url):
    script = tmp_path / "ada.yaml"
    script.write_text(ADA)
    cli("flows", "apply", str(EXAMPLES / "nudge.yaml"))
    if database_url.startswith("sqlite:///"):  # read-only: even a read-only file will do
        Path(database_url.removeprefix("sqlite:///")).chmod(0o400)
    result = as_json(
        cli("simulate", str(EXAMPLES / "onboarding.yaml"), "--events", str(script), "--json")
    )
    [session] = result["sessions"]
    sent = [e["data"]["subject"] for e in session["timeline"] if e["kind"] == "email_sent"]
    assert sent[-1] == "Need a hand getting started, Ada?"  # the stored template nudge
    assert as_json(cli("flows", "list", "--json")) == []
    assert "no visitor" in cli("visitors", "show", "ada@example.com", expect=1).stderr
    help_text = cli("simulate", "--help").stdout
    assert "PATH is a definition file or a directory of them" in help_text
    assert "--events FILE" in help_text


def test_a_definition_path_that_is_not_a_readable_regular_file_says_what_it_is(cli, tmp_path):
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(tmp_path / "loop.yaml")
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    close = tmp_path / "close.yaml"
    close.write_text("key: close\n#" + "x" * (1024 * 1024 + 56) + "\n")
    for path, line in [
        (loop, "error: loop.yaml: too many levels of symbolic links"),
        (fifo, "error: pipe.yaml: not a regular file"),
        (Path("/dev/zero"), "error: zero: not a regular file"),
        (
            close,
            "error: close.yaml: the text is 1,048,645 bytes; at most 1,048,576 can be read at once",
        ),
    ]:
        done = cli("flows", "validate", str(path), expect=1)
        assert done.stderr.splitlines() == [line, "1 problem(s)"]
    flow = tmp_path / "flow.yaml"
    flow.write_text("key: f\ntrigger: {event: go}\nsteps: [{exit: true}]\n")
    done = cli("simulate", str(flow), "--events", "/dev/zero", expect=1)
    assert done.stderr.splitlines() == ["error: zero: not a regular file", "1 problem(s)"]
    (tmp_path / "empty.yaml").write_text("# the events, one day\n")
    done = cli("simulate", str(flow), "--events", "empty.yaml", expect=1)
    assert done.stderr.splitlines() == [
        "error: empty.yaml: no script in it (it is empty, or holds only comments and ---)",
        "1 problem(s)",
    ]


def test_a_file_without_a_definition_is_refused_naming_it(cli, tmp_path):
    """An empty file, or one of comments and `---` only, is no success with nothing
    done (`POST /api/apply` refuses such a body too): exit 1, nothing saved."""
    said = "no definition in it (it is empty, or holds only comments and ---)"
    files = {"empty.yaml": "", "notes.yaml": "# to do\n", "dashes.yaml": "---\n---\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    for command, last in (("validate", ""), ("apply", "; nothing was saved")):
        done = cli("flows", command, *files, expect=1)
        assert done.stderr.splitlines() == [
            *(f"error: {name}: {said}" for name in files),
            f"3 problem(s){last}",
        ]
    done = cli("flows", "apply", "--json", "empty.yaml", expect=1)
    assert as_json(done) == [{"loc": "empty.yaml", "msg": said}]
    assert as_json(cli("flows", "list", "--json")) == []


def test_a_definition_file_with_a_url_urlsplit_cannot_read_is_a_one_line_error(cli, tmp_path):
    flow = tmp_path / "v6.yaml"
    flow.write_text("key: v6\ntrigger: {event: go}\nsteps: [{webhook: {url: 'http://[::1'}}]\n")
    for command, last in (("validate", ""), ("apply", "; nothing was saved")):
        done = cli("flows", command, str(flow), expect=1)
        assert done.stderr.splitlines() == [
            "error: steps[0].webhook.url: expected an http:// or https:// URL (Invalid IPv6 URL)",
            f"1 problem(s){last}",
        ]


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [
        ("--details", '{"a": "\\u0000"}', "details.a: text may not contain a NUL character"),
        ("--fields", '{"b": ["x\\u0000"]}', "fields.b[0]: text may not contain a NUL character"),
        ("--details", '{"\\u0000": 1}', "details.\\u0000: text may not contain a NUL character"),
    ],
)
def test_send_refuses_what_no_database_can_store_in_one_line(cli, option, value, error):
    done = cli("send", "x", "--email", "a@example.com", option, value, expect=1)
    assert done.stderr == f"error: {error}\n"
    assert "no visitor" in cli("visitors", "show", "a@example.com", expect=1).stderr


def test_an_address_that_is_no_email_is_a_one_line_error(cli):
    shown = cli("visitors", "show", "notanemail", expect=1)
    assert shown.stderr == "error: not an email address: 'notanemail'\n"
    sent = cli("send", "x", "--email", "a..b@example.com", expect=1)
    assert sent.stderr == "error: email: not an email address: 'a..b@example.com'\n"


def test_stored_control_characters_never_reach_the_terminal(cli, tmp_path):
    """An escape sequence in an event (here made a tag by the flow) is printed as
    `\\u001b`, not sent to the operator's terminal."""
    flow = tmp_path / "tagger.yaml"
    flow.write_text(
        "key: tagger\ntrigger: {event: go}\nsteps:\n"
        "  - {id: mark, tag: {add: ['{{ event.details.v }}']}}\n"
    )
    cli("flows", "apply", str(flow))
    cli("flows", "on", "tagger")
    details = json.dumps({"v": "\x1b]0;pwned\x07RED"})
    sid = as_json(cli("send", "go", "--email", "esc@example.com", "--details", details, "--json"))[
        "sessions_started"
    ][0]
    app = Sluice(Settings(database_url=cli.env["SLUICE_DATABASE_URL"], signing_key="k"))
    try:
        app.worker().run_until_idle()  # tags the visitor
    finally:
        app.close()
    printed = cli("sessions", "show", str(sid)).stdout
    assert "\x1b" not in printed and "\x07" not in printed
    assert "\\u001b]0;pwned\\u0007RED" in printed


def test_each_line_of_a_note_is_indented_under_its_entry_of_the_audit_log(cli, tmp_path):
    """A line break in a note (a carriage return too) starts an indented line, so no
    line of a note can pass for an entry of the audit log."""
    flow = tmp_path / "tagger.yaml"
    flow.write_text("key: tagger\ntrigger: {event: go}\nsteps:\n  - {tag: {add: [x]}}\n")
    forged = "shorter wait\r2026-01-01T00:00:00+00:00  admin  off  v9\nsee ticket 12\r\n"
    cli("flows", "apply", "--note", forged, str(flow))
    entry, *rest = cli("flows", "changes", "tagger").stdout.splitlines()
    assert re.fullmatch(r"\S+  cli  version  v1", entry)
    assert rest[:3] == [
        "  note: shorter wait",
        "        2026-01-01T00:00:00+00:00  admin  off  v9",
        "        see ticket 12",
    ]


def test_flows_hook_tells_the_url_and_secret_the_api_accepts(cli, tmp_path):
    flow = tmp_path / "paid.yaml"
    flow.write_text(
        "key: paid\ntrigger: {webhook: {email: '{{ body.email }}'}}\nsteps: [{exit: true}]\n"
    )
    cli("flows", "apply", str(flow))
    hook = as_json(cli("flows", "hook", "paid", "--json"))
    assert hook["url"] == "http://127.0.0.1:8000/api/hooks/paid"
    server = Sluice(Settings(database_url=cli.env["SLUICE_DATABASE_URL"], signing_key="k"))
    assert hook["secret"] == server.hook("paid")[1]  # what the server checks
    server.close()
    assert cli("flows", "hook", "paid").stdout.startswith(
        "POST http://127.0.0.1:8000/api/hooks/paid\n"
    )
    refused = cli("flows", "hook", "nope", expect=1)
    assert "unknown flow 'nope'" in refused.stderr
