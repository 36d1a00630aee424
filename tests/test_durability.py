"""What the database keeps, and how: SQLite's commits are synced to disk at each commit
unless the operator chooses otherwise (SLUICE_SQLITE_SYNCHRONOUS), and instants are
stored in one text format that sorts in time order and reads back as the same
aware UTC instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from sluice.service import Sluice
from sluice.settings import Settings
from sluice.store.schema import tags

SYNCHRONOUS = {0: "off", 1: "normal", 2: "full", 3: "extra"}


def pragma_synchronous(app: Sluice) -> str:
    with app.db.read() as conn:
        return SYNCHRONOUS[conn.exec_driver_sql("PRAGMA synchronous").scalar()]


def test_sqlite_commits_are_synced_at_each_commit_by_default(tmp_path):
    app = Sluice(Settings(database_url=f"sqlite:///{tmp_path}/s.db"))
    try:
        assert pragma_synchronous(app) == "full"
    finally:
        app.close()


def test_sqlite_synchronous_normal_is_taken_from_the_environment(tmp_path):
    settings = Settings.from_env(
        {"SLUICE_DATABASE_URL": f"sqlite:///{tmp_path}/s.db", "SLUICE_SQLITE_SYNCHRONOUS": "NORMAL"}
    )
    app = Sluice(settings)
    try:
        assert pragma_synchronous(app) == "normal"
    finally:
        app.close()


def test_an_unknown_synchronous_setting_is_refused_when_the_settings_are_read():
    with pytest.raises(ValueError, match=r"^SLUICE_SQLITE_SYNCHRONOUS: must be full or normal$"):
        Settings.from_env({"SLUICE_SQLITE_SYNCHRONOUS": "off"})


def test_instants_read_back_as_the_same_aware_utc_instant(app):
    berlin = timezone(timedelta(hours=1))
    written = {
        "whole": datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC),
        "micro": datetime(2026, 3, 1, 12, 0, 0, 120, tzinfo=UTC),
        "offset": datetime(2026, 3, 1, 13, 30, 5, 999999, tzinfo=berlin),
    }
    with app.db.write() as conn:
        conn.execute(tags.insert(), [{"name": k, "created_at": v} for k, v in written.items()])
    with app.db.read() as conn:
        read = dict(conn.execute(sa.select(tags.c.name, tags.c.created_at)).all())
    assert read == written
    assert all(value.tzinfo == UTC for value in read.values())
    assert read["offset"] == datetime(2026, 3, 1, 12, 30, 5, 999999, tzinfo=UTC)


def test_sqlite_stores_instants_as_text_that_sorts_in_time_order(tmp_path):
    app = Sluice(Settings(database_url=f"sqlite:///{tmp_path}/s.db"))
    app.db.upgrade()
    try:
        instants = [
            datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC),
            datetime(2026, 3, 1, 12, 0, 0, 1, tzinfo=UTC),
            datetime(2026, 3, 1, 11, 59, 59, 999999, tzinfo=UTC),
        ]
        with app.db.write() as conn:
            conn.execute(
                tags.insert(), [{"name": str(n), "created_at": t} for n, t in enumerate(instants)]
            )
            stored = (
                conn.exec_driver_sql("SELECT created_at FROM tags ORDER BY created_at")
                .scalars()
                .all()
            )
            earlier = conn.execute(
                sa.select(sa.func.count()).where(tags.c.created_at < instants[0])
            ).scalar()
        # SQLAlchemy's own format: older rows compare with new ones as before.
        assert stored == [
            "2026-03-01 11:59:59.999999",
            "2026-03-01 12:00:00.000000",
            "2026-03-01 12:00:00.000001",
        ]
        assert earlier == 1
    finally:
        app.close()


def test_sqlite_instants_written_without_fractions_read_back(tmp_path):
    """SQLite's own CURRENT_TIMESTAMP, or a hand-made row, has no fraction of a second."""
    app = Sluice(Settings(database_url=f"sqlite:///{tmp_path}/s.db"))
    app.db.upgrade()
    try:
        with app.db.write() as conn:
            conn.exec_driver_sql(
                "INSERT INTO tags (name, created_at) VALUES ('a', '2026-03-01 12:00:00')"
            )
            read = conn.execute(sa.select(tags.c.created_at)).scalar()
        assert read == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    finally:
        app.close()
