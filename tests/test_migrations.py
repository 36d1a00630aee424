"""Applying every migration gives exactly the schema the code declares."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from sluice.audience import TransactionalEmail
from sluice.service import Sluice
from sluice.settings import Settings
from sluice.store.db import MIGRATIONS, Database, NewerSchema, head_revision
from sluice.store.schema import flows, metadata, sessions, suppressions, visitors


def test_migrations_produce_the_declared_schema(database_url):
    db = Database(database_url)
    db.upgrade()  # a second upgrade is a no-op
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn)
        differences = compare_metadata(context, metadata)
    assert db.schema_revision() == head_revision()
    db.dispose()
    assert differences == []


def test_the_quick_schema_check_knows_the_newest_migration():
    """`Database.upgrade` skips Alembic when the database is at `head_revision()`,
    which reads the migration file names; Alembic reads the scripts themselves."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert head_revision() == ScriptDirectory.from_config(config).get_current_head()


def test_sqlite_tables_rebuilt_for_autoincrement_keep_their_rows(tmp_path):
    """0004 rebuilds SQLite tables so that ids of erased rows never come back; the
    rows of an existing database survive it, and the next id follows the largest."""
    db = Database(f"sqlite:///{tmp_path}/old.db")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    now = datetime(2026, 11, 1, tzinfo=UTC)
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0003")
        conn.execute(
            visitors.insert(),
            [
                {
                    "uuid": f"00000000-0000-4000-8000-00000000000{n}",
                    "email": f"v{n}@example.com",
                    "email_key": f"v{n}@example.com",
                    "fields": {"n": n},
                    "tags": [],
                    "created_at": now,
                    "updated_at": now,
                }
                for n in (1, 2, 3)
            ],
        )
    db.upgrade()
    with db.engine.begin() as conn:
        rows = conn.execute(sa.select(visitors.c.id, visitors.c.fields).order_by("id")).all()
        assert [tuple(r) for r in rows] == [(1, {"n": 1}), (2, {"n": 2}), (3, {"n": 3})]
        conn.execute(visitors.delete().where(visitors.c.id == 3))
        new = conn.execute(
            visitors.insert()
            .values(
                uuid="00000000-0000-4000-8000-000000000009",
                email="n@example.com",
                email_key="n@example.com",
                fields={},
                tags=[],
                created_at=now,
                updated_at=now,
            )
            .returning(visitors.c.id)
        ).scalar_one()
    assert new == 4
    db.dispose()


def test_visitors_keyed_by_a_unicode_domain_are_found_by_either_form_after_0005(
    database_url, clock
):
    """Before 0005 a Unicode domain was kept as given: those visitors get the IDNA key
    (unless that spelling is already another visitor), and an erasure hashed then
    still keeps the address from being emailed."""
    db = Database(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    now = datetime(2026, 11, 1, tzinfo=UTC)
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0004")
        conn.execute(
            visitors.insert(),
            [
                {
                    "uuid": f"00000000-0000-4000-8000-00000000000{n}",
                    "email": email,
                    "email_key": email.lower(),
                    "fields": {"n": n},
                    "tags": [],
                    "created_at": now,
                    "updated_at": now,
                }
                for n, email in enumerate(
                    ["Anna@Bücher.example", "bo@bücher.example", "bo@xn--bcher-kva.example"]
                )
            ],
        )
        legacy = hashlib.sha256(b"eve@b\xc3\xbccher.example").hexdigest()  # eve@bücher.example
        conn.execute(suppressions.insert().values(email_hash=legacy, created_at=now))
    db.upgrade()
    db.dispose()
    app = Sluice(Settings(database_url=database_url, signing_key="k"), clock)
    try:
        anna = app.visitor("anna@xn--bcher-kva.example")
        assert anna["email"] == "Anna@xn--bcher-kva.example" and anna["fields"] == {"n": 0}
        assert app.visitor("ANNA@bücher.example")["uuid"] == anna["uuid"]
        assert app.visitor("bo@bücher.example")["fields"] == {"n": 2}  # left: IDNA taken
        mail = TransactionalEmail(to="eve@xn--bcher-kva.example", from_=None, subject="s", html="b")
        assert app.audience.send_emails([(0, mail)]) == {
            0: "to: the address was erased; it is never emailed again"
        }
    finally:
        app.close()


def test_a_database_migrated_by_a_newer_sluice_is_refused_untouched(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/newer.db")
    db.upgrade()
    with db.write() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(NewerSchema, match="schema revision 9999, newer than this Sluice"):
        db.upgrade()
    assert db.schema_revision() == "9999"
    db.dispose()


def test_sessions_no_worker_may_claim_lose_their_due_time_in_0007(database_url):
    """Before 0007 a delivery outcome made a stopped session, or one of a flow that is
    off, due; every claim then read it again. After 0007 only the sessions a worker may
    claim keep a due time (the earliest of them is what an idle worker sleeps until)."""
    db = Database(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    now = datetime(2026, 11, 1, tzinfo=UTC)
    later = datetime(2026, 11, 2, tzinfo=UTC)
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0006")
        conn.execute(
            flows.insert(),
            [
                {"key": key, "name": key, "status": status, "version": 1}
                | {"created_at": now, "updated_at": now}
                for key, status in [("live", "on"), ("paused", "off")]
            ],
        )
        conn.execute(
            sessions.insert(),
            [
                {
                    "id": n,
                    "visitor_id": n,
                    "flow_key": flow,
                    "flow_version": 1,
                    "status": status,
                    "step": "nap",
                    "step_begun": True,
                    "state": {},
                    "origin_event_id": n,
                    "depth": 0,
                    "event_cursor": n,
                    "due_at": due,
                    "revision": 1,
                    "started_at": now,
                    "updated_at": now,
                }
                for n, flow, status, due in [
                    (1, "live", "stopped", now),
                    (2, "paused", "waiting", now),
                    (3, "live", "waiting", later),
                ]
            ],
        )
    db.upgrade()
    with db.read() as conn:
        due = dict(conn.execute(sa.select(sessions.c.id, sessions.c.due_at)).all())
    db.dispose()
    assert due == {1: None, 2: None, 3: later}
