"""Versions keep the author's text (SPEC §7): comments, key order and block scalars
survive every way of saving; diffs compare texts; notes go into the audit log; any
version can be restored; a draft of a live flow waits beside it until published."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient

from api_support import api_in_process
from sluice.api.app import create_app
from sluice.definitions.parse import load_documents
from sluice.service import Sluice
from sluice.settings import Settings
from sluice.store.db import MIGRATIONS, Database
from sluice.store.schema import flow_versions

YAML = {"Content-Type": "application/yaml"}
PASSWORD = "correct horse battery"

FLOW = """\
# The welcome series: keep it short.
key: welcome
name: Welcome
trigger:
  event: $signup   # sent by the app on sign-up
steps:
  - id: hello
    email:
      subject: Hello
      html: |
        <p>Hello,</p>
        <p>welcome aboard.</p>
  - id: pause
    wait: 2d   # long enough to read it
  - id: done
    tag: {add: [welcomed]}
"""

TEMPLATE = """\
# shared footer
kind: template
key: footer
subject: Goodbye
html: |
  <p>Bye</p>
"""


def later(text: str) -> str:
    """FLOW with a shorter wait: a change of the definition."""
    return text.replace("wait: 2d", "wait: 1d")


def apply_with_cli(directory: Path, database_url: str, name: str, note: str):
    """`sluice flows apply NAME --note NOTE` run in `directory`, as a person types it."""
    env = {**os.environ, "SLUICE_DATABASE_URL": database_url, "SLUICE_SIGNING_KEY": "k"}
    sluice = str(Path(sys.executable).parent / "sluice")
    return subprocess.run(
        [sluice, "flows", "apply", name, "--note", note],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def api(app):
    with api_in_process(app) as api:
        yield api


# -- keeping the text ------------------------------------------------------------------


def test_apply_from_a_file_keeps_each_documents_own_text(tmp_path, database_url):
    """`sluice flows apply` of a file of several documents stores each one's text as
    written (without the `---` between them), and the note in the audit log."""
    (tmp_path / "flows.yaml").write_text(f"{TEMPLATE}---\n{FLOW}")
    done = apply_with_cli(tmp_path, database_url, "flows.yaml", note="first cut")
    assert done.returncode == 0, done.stderr
    app = Sluice(Settings(database_url=database_url, signing_key="k"))
    try:
        assert app.show_flow("welcome")["source"] == FLOW
        assert app.template("footer")["source"] == TEMPLATE
        [change] = app.flow_changes("welcome")
        assert change["note"] == "first cut"
        assert app.show_flow("welcome")["versions"][0]["note"] == "first cut"
    finally:
        app.close()


def test_put_yaml_keeps_comments_key_order_and_block_scalars(api):
    saved = api.put("/flows/welcome", content=FLOW, headers=YAML)
    assert saved.status_code == 201
    shown = api.get("/flows/welcome").json()
    assert shown["source"] == FLOW
    assert "html: |\n        <p>Hello,</p>" in shown["source"]
    assert (
        shown["definition"]["steps"][0]["email"]["html"]
        == "<p>Hello,</p>\n<p>welcome aboard.</p>\n"
    )
    template = api.put("/templates/footer", content=TEMPLATE, headers=YAML)
    assert template.status_code == 201 and template.json()["source"] == TEMPLATE


def test_a_yaml_body_without_its_key_is_kept_with_the_urls_key(api):
    text = FLOW.replace("key: welcome\n", "")
    assert api.put("/flows/welcome", content=text, headers=YAML).status_code == 201
    source = api.get("/flows/welcome").json()["source"]
    assert source == "key: welcome\n" + text
    assert load_documents(source)[0]["key"] == "welcome"


def test_json_is_kept_as_block_yaml_and_an_unchanged_json_save_keeps_the_authors_text(api):
    api.put("/flows/welcome", content=FLOW, headers=YAML)
    definition = api.get("/flows/welcome").json()["definition"]
    same = api.put("/flows/welcome", json=definition)
    assert same.status_code == 200 and same.json()["version"] == 1
    assert api.get("/flows/welcome").json()["source"] == FLOW  # comments not lost
    definition["steps"][1]["wait"] = "1d"
    assert api.put("/flows/welcome", json=definition).json()["version"] == 2
    source = api.get("/flows/welcome").json()["source"]
    assert "html: |\n" in source and "wait: 1d" in source
    assert load_documents(source) == [definition]


def test_a_comment_only_change_is_a_new_version_whose_diff_shows_it(api):
    api.put("/flows/welcome", content=FLOW, headers=YAML)
    commented = FLOW.replace("# long enough to read it", "# two days: tested in 2025")
    saved = api.put("/flows/welcome", content=commented, headers=YAML, params={"note": "why 2d"})
    assert saved.json()["version"] == 2
    assert api.put("/flows/welcome", content=commented, headers=YAML).json()["version"] == 2
    changes = api.get("/flows/welcome/changes").json()
    assert changes[-1]["note"] == "why 2d"
    assert "-    wait: 2d   # long enough to read it" in changes[-1]["diff"]
    assert "+    wait: 2d   # two days: tested in 2025" in changes[-1]["diff"]
    assert [v["note"] for v in api.get("/flows/welcome").json()["versions"]] == [None, "why 2d"]


def test_apply_of_yaml_documents_keeps_their_texts(api):
    body = f"{TEMPLATE}---\n{FLOW}"
    report = api.post("/apply", content=body, headers=YAML, params={"note": "together"})
    assert report.status_code == 200, report.text
    assert api.get("/flows/welcome").json()["source"] == FLOW
    assert api.get("/templates/footer").json()["source"] == TEMPLATE
    assert api.get("/flows/welcome/changes").json()[0]["note"] == "together"


# -- the UI editor ---------------------------------------------------------------------


@pytest.fixture
def browser(database_url, clock):
    settings = Settings(
        database_url=database_url, signing_key="test-signing-key", admin_password=PASSWORD
    )
    sluice = Sluice(settings, clock)
    with TestClient(create_app(sluice), follow_redirects=False) as client:
        page = client.get("/login")
        token = re.search(r'name="login_token" value="([^"]+)"', page.text).group(1)
        client.post(
            "/login",
            data={"username": "admin", "password": PASSWORD, "login_token": token, "next": "/"},
        )
        client.sluice = sluice
        yield client
    sluice.close()


def csrf(client: TestClient, path: str = "/") -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get(path).text).group(1)


def post(client: TestClient, path: str, **data):
    return client.post(path, data={"csrf": csrf(client), **data})


def editor_text(client: TestClient, key: str) -> str:
    from html import unescape

    page = client.get(f"/flows/{key}?tab=edit").text
    return unescape(re.search(r'<textarea name="definition"[^>]*>(.*?)</textarea>', page, re.S)[1])


def test_the_editor_shows_and_saves_the_text_with_its_comments_and_a_note(browser):
    assert post(browser, "/flows/_new", definition=FLOW, note="new").status_code == 303
    assert editor_text(browser, "welcome") == FLOW
    edited = later(FLOW).replace("# sent by the app", "# sent by the web app")
    saved = post(browser, "/flows/welcome/edit", definition=edited, note="shorter wait")
    assert saved.status_code == 303
    assert browser.sluice.show_flow("welcome")["source"] == edited
    assert editor_text(browser, "welcome") == edited
    page = browser.get("/flows/welcome?tab=versions").text
    assert "shorter wait" in page  # the note, in the versions and the Changes tables
    assert re.search(r'class="diff-removed">.*?# sent by the app on sign-up', page, re.S)
    assert re.search(r'class="diff-added">.*?# sent by the web app on sign-up', page, re.S)


def test_the_versions_tab_shows_a_versions_canvas_beside_the_current_one(browser):
    post(browser, "/flows/_new", definition=FLOW)
    post(browser, "/flows/welcome/edit", definition=FLOW.replace("id: done", "id: finish"))
    page = browser.get("/flows/welcome?tab=versions&show=1").text
    old, current = page.split('data-version-canvas="current"')
    assert 'data-version-canvas="1"' in old and 'data-step="done"' in old
    assert 'data-step="finish"' in current and 'data-step="done"' not in current


# -- restore ---------------------------------------------------------------------------


def test_restore_saves_an_old_text_as_a_new_version_with_its_blast_radius(api, driver):
    api.put_flow(FLOW)
    api.put("/flows/welcome", content=FLOW.replace("id: pause", "id: rest"), headers=YAML)
    [sid] = driver.send("$signup", "ada@example.com").sessions_started
    assert driver.session(sid)["step"] == "rest"
    dry = api.post("/flows/welcome/versions/1/restore", params={"dry_run": "true"}).json()
    assert dry["flows"] == {"welcome": 3}
    assert dry["blast_radius"]["welcome"] == [
        {"step": "rest", "sessions": 1, "continues_at": "done"}
    ]
    assert api.get("/flows/welcome").json()["version"] == 2  # the dry run saved nothing
    done = api.post("/flows/welcome/versions/1/restore", params={"note": "rest was wrong"})
    assert done.status_code == 200 and done.json()["flows"] == {"welcome": 3}
    shown = api.get("/flows/welcome").json()
    assert shown["source"] == FLOW and shown["version"] == 3
    third = api.get("/flows/welcome/versions/3").json()
    assert third["note"] == "restored version 1: rest was wrong"
    assert third["source"] == FLOW and third["definition"] == shown["definition"]
    first = api.get("/flows/welcome/versions/1").json()
    assert set(first) == {"version", "source", "definition", "created_at", "note"}


def test_an_unknown_version_or_flow_is_a_404_and_changes_nothing(api):
    api.put_flow(FLOW, on=False)
    for method, path in [
        ("GET", "/flows/welcome/versions/7"),
        ("POST", "/flows/welcome/versions/7/restore"),
        ("GET", "/flows/nope/versions/1"),
        ("POST", "/flows/nope/versions/1/restore"),
    ]:
        answer = api.request(method, path)
        assert answer.status_code == 404, (method, path, answer.text)
    assert api.get("/flows/welcome/versions/0").status_code == 422
    assert api.get("/flows/welcome").json()["version"] == 1


def test_restore_in_the_ui_asks_first_with_the_sessions_it_moves(browser, driver, clock):
    driver = type(driver)(browser.sluice, clock)
    post(browser, "/flows/_new", definition=FLOW)
    post(browser, "/flows/welcome/edit", definition=FLOW.replace("id: pause", "id: rest"))
    post(browser, "/flows/welcome/on")
    driver.send("$signup", "ada@example.com")
    versions = browser.get("/flows/welcome?tab=versions").text
    assert 'action="/flows/welcome/versions/1/restore"' in versions
    asked = post(browser, "/flows/welcome/versions/1/restore")
    assert asked.status_code == 200 and "Restoring moves sessions" in asked.text
    assert re.search(r"1 at <code>rest</code> → <code>done</code>", asked.text)
    assert browser.sluice.show_flow("welcome")["version"] == 2  # nothing saved yet
    done = post(browser, "/flows/welcome/versions/1/restore", confirm="1", note="back")
    assert done.status_code == 303
    assert browser.sluice.show_flow("welcome")["source"] == FLOW
    assert browser.sluice.flow_changes("welcome")[-1]["note"] == "restored version 1: back"
    assert post(browser, "/flows/welcome/versions/9/restore").status_code == 404


def test_version_numbers_beyond_any_version_are_refused_in_the_ui(browser):
    """Version numbers in the UI's paths and queries are bounded as the API's are
    (1 to 2^31 - 1): a larger one is the 404 page (in a path) or the 422 page (in a
    query), never a database error."""
    post(browser, "/flows/_new", definition=FLOW)
    post(browser, "/templates/_new", key="footer", subject="Bye", html="<p>Bye</p>")
    huge, beyond = "99999999999999999999", str(2**31)
    for number in (huge, beyond, "0"):
        answer = post(browser, f"/flows/welcome/versions/{number}/restore", confirm="1")
        assert answer.status_code == 404, number
        assert f"There is no version {number}." in answer.text
        for page in ("/flows/welcome", "/templates/footer"):
            for name in ("a", "b", "show") if page.startswith("/flows") else ("a", "b"):
                answer = browser.get(page, params={"tab": "versions", name: number})
                assert answer.status_code == 422, (page, name, number)
    largest = str(2**31 - 1)
    assert post(browser, f"/flows/welcome/versions/{largest}/restore").status_code == 404
    assert browser.get("/flows/welcome", params={"tab": "versions", "a": largest}).is_success
    assert browser.sluice.show_flow("welcome")["version"] == 1


def test_the_restore_page_says_which_waits_end_at_once(browser, driver, clock):
    """Restoring a shorter wait is an edit like any other: the page counts the
    sessions that would wake at once (sluice/impact.py) before anything is saved."""
    driver = type(driver)(browser.sluice, clock)
    post(browser, "/flows/_new", definition=FLOW.replace("wait: 2d", "wait: 1m"))
    post(browser, "/flows/welcome/edit", definition=FLOW)
    post(browser, "/flows/welcome/on")
    driver.send("$signup", "ada@example.com")
    driver.advance(timedelta(hours=1))
    asked = post(browser, "/flows/welcome/versions/1/restore")
    assert asked.status_code == 200
    impact = re.search(r'<section class="impact[^"]*" data-impact.*?</section>', asked.text, re.S)
    assert impact and re.search(r"1 wakes at once", impact[0]), asked.text
    assert browser.sluice.show_flow("welcome")["version"] == 2  # nothing saved yet


# -- drafts ----------------------------------------------------------------------------


def test_a_draft_waits_beside_the_live_version_until_published(api, driver):
    api.put_flow(FLOW)
    [sid] = driver.send("$signup", "ada@example.com").sessions_started
    draft = later(FLOW).replace("# long enough to read it", "# a day is enough")
    saved = api.put("/flows/welcome/draft", content=draft, headers=YAML)
    assert saved.status_code == 200, saved.text
    assert saved.json()["source"] == draft and saved.json()["actor"] == "api"
    assert api.get("/flows/welcome/draft").json()["document"]["steps"][1]["wait"] == "1d"
    # The live version runs untouched: the session still waits its two days.
    assert api.get("/flows/welcome").json()["version"] == 1
    driver.advance(timedelta(days=1, hours=1))
    assert driver.session(sid)["status"] == "waiting" and driver.session(sid)["flow_version"] == 1
    # The draft can be tried on a visitor with the simulator.
    document = api.get("/flows/welcome/draft").json()["document"]
    simulated = api.post(
        "/flows/welcome/simulate",
        json={
            "visitor": {"email": "sim@example.com"},
            "events": [{"at": "+0s", "type": "$signup"}],
            "definition": document,
        },
    )
    assert simulated.status_code == 200, simulated.text
    [session] = simulated.json()["sessions"]
    assert session["status"] == "completed"
    published = api.post("/flows/welcome/draft/publish", params={"note": "one day"})
    assert published.status_code == 200 and published.json()["flows"] == {"welcome": 2}
    assert api.get("/flows/welcome/draft").status_code == 404
    shown = api.get("/flows/welcome").json()
    assert shown["source"] == draft and shown["versions"][-1]["note"] == "one day"


def test_an_invalid_draft_is_refused_and_nothing_is_stored(api):
    api.put_flow(FLOW, on=False)
    broken = FLOW.replace("wait: 2d", "wait: 2 days")
    refused = api.put("/flows/welcome/draft", content=broken, headers=YAML)
    assert refused.status_code == 422
    assert any("steps[1].wait" in p["loc"] for p in refused.json()["detail"]), refused.text
    renamed = api.put("/flows/welcome/draft", content=FLOW.replace("key: welcome", "key: other"))
    assert renamed.status_code == 422 and renamed.json()["detail"][0]["loc"] == "key"
    assert api.put("/flows/welcome/draft", content="{{{").status_code == 422
    assert api.get("/flows/welcome/draft").status_code == 404
    assert api.post("/flows/welcome/draft/publish").status_code == 404
    assert api.delete("/flows/welcome/draft").status_code == 404
    assert api.put("/flows/nope/draft", content=FLOW).status_code == 404


def test_a_draft_can_be_thrown_away_and_shows_on_the_flow_page(api, browser):
    browser_api = api  # the same database: the page reads what the API stored
    post(browser, "/flows/_new", definition=FLOW)
    assert "data-draft" not in browser.get("/flows/welcome").text
    assert browser_api.put("/flows/welcome/draft", content=later(FLOW)).status_code == 200
    assert "data-draft" in browser.get("/flows/welcome").text
    assert browser_api.delete("/flows/welcome/draft").status_code == 204
    assert "data-draft" not in browser.get("/flows/welcome").text
    assert browser_api.get("/flows/welcome").json()["version"] == 1


# -- the migration ---------------------------------------------------------------------


def test_versions_stored_before_0010_get_a_yaml_text_of_their_definition(database_url):
    db = Database(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    now = datetime(2026, 11, 1, tzinfo=UTC)
    definition = json.loads(json.dumps(load_documents(FLOW)[0]))
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0009")
        conn.execute(
            sa.text(
                "INSERT INTO flows (key, name, status, version, created_at, updated_at) "
                "VALUES ('welcome', 'Welcome', 'off', 1, :now, :now)"
            ),
            {"now": now.replace(tzinfo=None)},
        )
        old_versions = sa.table(
            "flow_versions",
            sa.column("flow_key"),
            sa.column("version"),
            sa.column("definition", flow_versions.c.definition.type),
            sa.column("created_at", flow_versions.c.created_at.type),
        )
        conn.execute(
            old_versions.insert().values(
                flow_key="welcome", version=1, definition=definition, created_at=now
            )
        )
    db.upgrade()
    with db.read() as conn:
        source = conn.execute(sa.select(flow_versions.c.source)).scalar_one()
    db.dispose()
    assert load_documents(source) == [definition]
    assert "html: |\n" in source  # a multi-line string is a block, as a person writes it


# -- notes and confirmations -----------------------------------------------------------


# (A NUL anywhere in a query is refused before any route: 400, tests/test_ui_pages.py.)
@pytest.mark.parametrize(
    ("note", "said"),
    [
        ("bell\x07", "control character (U+0007)"),
        ("esc\x1b[31m", "control character (U+001B)"),
        ("\x7f", "control character (U+007F)"),
        ("csi\x9b31m", "control character (U+009B)"),  # C1: a terminal's CSI
        ("y" * 2001, "at most 2,000 characters (this one has 2,001)"),
    ],
)
def test_a_note_too_long_or_with_a_control_character_is_refused_by_every_api_save(api, note, said):
    """A note is text for people, of at most 2,000 characters: a control character
    (PostgreSQL cannot even store a NUL) or a longer note is a 422 naming the note,
    whichever way the change is made, and nothing is saved; tabs and line breaks are
    text."""
    api.put_flow(FLOW, on=False)
    api.put("/flows/welcome/draft", content=later(FLOW), headers=YAML)
    for method, path, body in [
        ("PUT", "/flows/welcome", later(FLOW)),
        ("POST", "/apply", later(FLOW)),
        ("POST", "/flows/welcome/versions/1/restore", None),
        ("POST", "/flows/welcome/draft/publish", None),
    ]:
        answer = api.request(method, path, content=body, headers=YAML, params={"note": note})
        assert answer.status_code == 422, (path, answer.text)
        [problem] = answer.json()["detail"]
        assert problem["loc"] == "query.note", path
        assert said in problem["msg"], path
    assert api.get("/flows/welcome").json()["version"] == 1
    assert api.get("/flows/welcome/draft").status_code == 200
    kept = api.put(
        "/flows/welcome", content=later(FLOW), headers=YAML, params={"note": "line one\n\tline two"}
    )
    assert kept.status_code == 200, kept.text
    assert api.get("/flows/welcome").json()["versions"][-1]["note"] == "line one\n\tline two"
    longest = api.put("/flows/welcome", content=FLOW, headers=YAML, params={"note": "y" * 2000})
    assert longest.status_code == 200, longest.text


def test_a_bad_note_is_refused_by_the_ui_and_the_cli(browser, tmp_path, database_url):
    post(browser, "/flows/_new", definition=FLOW)
    refused = {
        "a\x00b": "a note may not hold a control character (U+0000)",
        "csi\x9b31m": "a note may not hold a control character (U+009B)",
        "y" * 2001: "a note may have at most 2,000 characters (this one has 2,001)",
    }
    for path in ("/flows/welcome/edit", "/flows/welcome/versions/1/restore"):
        for note, said in refused.items():
            answer = post(browser, path, definition=later(FLOW), note=note, confirm="1")
            assert answer.status_code == 422, path
            assert said in answer.text, path
    assert browser.sluice.show_flow("welcome")["version"] == 1

    (tmp_path / "welcome.yaml").write_text(later(FLOW))
    done = apply_with_cli(tmp_path, database_url, "welcome.yaml", note="bell\x07")
    assert done.returncode == 2
    assert "a note may not hold a control character (U+0007)" in done.stderr
    assert browser.sluice.show_flow("welcome")["version"] == 1


@pytest.mark.parametrize(
    ("note", "said"),
    [
        ("y" * 100_000, "a note may have at most 2,000 characters (this one has 100,000)"),
        # $'a\xffb': bytes that are not UTF-8 reach Python as a lone surrogate.
        ("a\udcffb", "a note must be valid UTF-8 text: it holds U+DCFF"),
        ("csi\x9b31m", "a note may not hold a control character (U+009B)"),
    ],
)
def test_the_cli_refuses_the_notes_the_api_refuses(tmp_path, database_url, note, said):
    """`--note` is checked as the API checks a note: a bad option (exit 2), nothing saved."""
    (tmp_path / "welcome.yaml").write_text(FLOW)
    done = apply_with_cli(tmp_path, database_url, "welcome.yaml", note=note)
    assert done.returncode == 2, done.stderr
    assert said in done.stderr and "Traceback" not in done.stderr
    app = Sluice(Settings(database_url=database_url, signing_key="k"))
    try:
        assert app.list_flows() == []
    finally:
        app.close()


def test_a_restores_note_fits_in_2000_characters_with_the_version_it_names(api):
    """`restored version N: ` comes first: the note given may fill the rest, no more."""
    api.put_flow(FLOW, on=False)
    api.put("/flows/welcome", content=later(FLOW), headers=YAML)
    room = 2000 - len("restored version 1: ")
    for dry_run in ("true", "false"):
        params = {"note": "y" * (room + 1), "dry_run": dry_run}
        refused = api.post("/flows/welcome/versions/1/restore", params=params)
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"] == [
            {
                "loc": "query.note",
                "msg": "a restore's note may have at most 1,980 characters, as "
                "'restored version 1: ' comes first (this one has 1,981)",
            }
        ]
    assert api.get("/flows/welcome").json()["version"] == 2
    done = api.post("/flows/welcome/versions/1/restore", params={"note": "y" * room})
    assert done.status_code == 200, done.text
    assert len(api.get("/flows/welcome/versions/3").json()["note"]) == 2000


def test_a_restores_note_too_long_for_its_version_is_refused_in_the_ui(browser):
    post(browser, "/flows/_new", definition=FLOW)
    post(browser, "/flows/welcome/edit", definition=later(FLOW))
    for confirm in ("", "1"):
        answer = post(
            browser, "/flows/welcome/versions/1/restore", note="y" * 1981, confirm=confirm
        )
        assert answer.status_code == 422
        assert "a restore&#39;s note may have at most 1,980 characters" in answer.text
    assert browser.sluice.show_flow("welcome")["version"] == 2


def test_a_restore_happens_only_when_confirmed_with_the_pages_button(browser):
    """The restore page's button posts `confirm=1`; any other value only asks again."""
    post(browser, "/flows/_new", definition=FLOW)
    post(browser, "/flows/welcome/edit", definition=later(FLOW))
    for value in ("0", "no", "yes", " 1"):
        asked = post(browser, "/flows/welcome/versions/1/restore", confirm=value)
        assert asked.status_code == 200 and "Restore" in asked.text, value
        assert browser.sluice.show_flow("welcome")["version"] == 2, value
    done = post(browser, "/flows/welcome/versions/1/restore", confirm="1")
    assert done.status_code == 303
    assert browser.sluice.show_flow("welcome")["version"] == 3
