"""Connections and transactions, for SQLite and PostgreSQL alike.

SQLite allows one writer at a time. Write transactions start with `BEGIN IMMEDIATE`
so that two writers queue on the busy timeout instead of deadlocking halfway through
(a deferred transaction that reads and then writes can fail to upgrade its lock).
Read transactions stay deferred, so readers never wait for writers under WAL.

The SQLite file holds the installation's secrets (the signing key among them), so it
is readable by its owner only: created with mode 0600 before SQLite opens it, and
tightened to 0600 when an older installation's file (or its -wal/-shm, which SQLite
creates with the database file's mode) is opened.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
_RETRY_DELAYS = (0.05, 0.2, 0.5, 1.0, 2.0)
_MIGRATION_LOCK = 0x51C3  # any constant: the advisory lock that serialises migrations


def _json_dumps(value) -> str:
    return orjson.dumps(value).decode()


class NewerSchema(RuntimeError):
    """The database was migrated by a newer Sluice than this one."""


def normalise_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here; SQLite URLs are taken as they are."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Database:
    def __init__(
        self, url: str, *, pool_size: int = 5, synchronous: str = "full", read_only: bool = False
    ):
        """`synchronous`: SQLite's `synchronous` pragma, `full` (a commit survives a
        power loss) or `normal` (it survives a killed process only); see
        docs/configuration.md. PostgreSQL ignores it. `read_only`: every transaction
        only reads, and a SQLite file that does not exist is an error instead of being
        created (`sluice simulate` reads so)."""
        self.url = normalise_url(url)
        self.synchronous = synchronous.upper()
        self.is_sqlite = self.url.startswith("sqlite")
        if read_only and self.is_sqlite and (path := sqlite_path(self.url)):
            self.url = f"sqlite:///file:{quote(str(Path(path).resolve()))}?mode=ro&uri=true"
        self.read_only = read_only
        self.engine = self._create_engine(pool_size)
        self._writer = threading.RLock() if self.is_sqlite else contextlib.nullcontext()

    def _create_engine(self, pool_size: int) -> Engine:
        if not self.is_sqlite:
            read_only = {"options": "-c default_transaction_read_only=on"}
            return sa.create_engine(
                self.url,
                json_serializer=_json_dumps,
                json_deserializer=orjson.loads,
                pool_size=pool_size,
                pool_pre_ping=True,
                connect_args=read_only if self.read_only else {},
            )
        path = sqlite_path(self.url)
        if path is not None:
            _owner_only(path, create=True)
        engine = sa.create_engine(
            self.url,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
            connect_args={"timeout": 30, "check_same_thread": False},
        )

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection, _record):
            if path is not None:
                for existing in (f"{path}-wal", f"{path}-shm"):
                    _owner_only(existing, create=False)
            # Let SQLAlchemy's "begin" event decide how transactions start.
            dbapi_connection.isolation_level = None
            # SQLite's own lower() folds ASCII letters only (PostgreSQL's folds all).
            dbapi_connection.create_function("unicode_lower", 1, _lower, deterministic=True)
            cursor = dbapi_connection.cursor()
            if self.read_only:  # the file's journal mode stays as it was set
                cursor.execute("PRAGMA busy_timeout=30000")
                cursor.close()
                return
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={self.synchronous}")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn):
            immediate = conn.get_execution_options().get("sqlite_immediate", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction: committed when the block ends, rolled back on error.

        On SQLite, writers of this process queue on a lock first: SQLite's own busy
        handler polls in sleeps of up to 100 ms, which is what a waiting writer
        would otherwise get."""
        with self._writer, self.engine.connect() as conn:
            if self.is_sqlite:
                conn = conn.execution_options(sqlite_immediate=True)
            with conn.begin():
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def upgrade(self) -> None:
        """Apply every schema migration not applied yet.

        A database already at the newest revision is recognised with one query, without
        loading Alembic (a quarter of a second of imports that every `sluice` command
        would otherwise pay). Raises NewerSchema for a database a newer Sluice migrated."""
        revision, head = self.schema_revision(), head_revision()
        if revision == head:
            return
        if revision is not None and revision > head:
            raise NewerSchema(
                f"the database is at schema revision {revision}, newer than this Sluice "
                f"knows ({head}): run a Sluice at least as new as the one that migrated it"
            )
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.connect() as conn:
            if self.is_sqlite:
                conn = conn.execution_options(sqlite_immediate=True)
            with conn.begin():
                if not self.is_sqlite:
                    # Processes starting together migrate one at a time; the others
                    # then find nothing left to do. (SQLite: BEGIN IMMEDIATE already.)
                    conn.execute(
                        sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK}
                    )
                config.attributes["connection"] = conn
                command.upgrade(config, "head")

    def schema_revision(self) -> str | None:
        """The revision Alembic recorded in this database; None when it has none yet
        (a new database) or cannot be read."""
        try:
            with self.read() as conn:
                return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        except (sa.exc.OperationalError, sa.exc.ProgrammingError):
            return None  # no such table yet; a database that is away fails again in upgrade

    def ping(self) -> bool:
        try:
            with self.read() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.OperationalError:
            return False
        return True

    def dispose(self) -> None:
        self.engine.dispose()


def sqlite_path(url: str) -> str | None:
    """The file of a SQLite URL; None for an in-memory database or a `file:` URI."""
    database = sa.engine.make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def _owner_only(path: str, *, create: bool) -> None:
    """Make `path` mode 0600: created so when `create` and missing (an empty file is
    an empty SQLite database), else its mode narrowed if it exists."""
    try:
        if create:
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        if os.stat(path).st_mode & 0o077:
            os.chmod(path, 0o600)
    except FileNotFoundError:
        pass  # no such directory: SQLite says so when it opens the file
    except PermissionError:
        log.warning("cannot make %s readable by its owner only", path)


def head_revision() -> str:
    """The newest migration's revision. Migrations are named `NNNN_what.py` and their
    revision is `NNNN` (tests/test_migrations.py checks this against Alembic's own
    reading of the scripts)."""
    return max(path.name[:4] for path in (MIGRATIONS / "versions").glob("[0-9]" * 4 + "_*.py"))


def error_line(error: Exception) -> str:
    """The first line of `error`'s message, for a timeline ("" when it has none): for a
    database error, the database's own message without the statement and parameters."""
    detail = str(getattr(error, "orig", None) or error).strip().splitlines()
    return detail[0] if detail else ""


def retrying(operation, *, attempts: int = len(_RETRY_DELAYS) + 1):
    """Run `operation()` again when the database is briefly unavailable or locked."""
    for delay in (*_RETRY_DELAYS[: attempts - 1], None):
        try:
            return operation()
        except sa.exc.OperationalError as error:
            if delay is None:
                raise
            log.warning("database unavailable, retrying in %.2fs: %s", delay, error.orig)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _lower(value: Any) -> Any:
    """`unicode_lower(x)` on SQLite: text in lower case as Python (and PostgreSQL's
    `lower`) makes it, `Ä` → `ä` included; anything else as it is."""
    return value.lower() if isinstance(value, str) else value


def lower(conn: Connection, value: sa.ColumnElement) -> sa.ColumnElement:
    """`value` in lower case, every letter, on both databases (see `_lower`)."""
    if conn.dialect.name == "sqlite":
        return sa.func.unicode_lower(value, type_=value.type)
    return sa.func.lower(value)
