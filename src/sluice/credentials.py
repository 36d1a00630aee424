"""Credentials and secrets (SPEC §3.2): the site uuid and API keys, the admin
password, the link-signing key and the webhook secret.

Each is taken from the environment when set there (`Settings`), else generated on
first start and stored in the `settings_store` table. What must be shown to people
once is returned by `ensure()` so that `sluice serve` can print it. The API secret key
and the admin password are stored only as scrypt hashes; the signing key and the
webhook secret are needed in clear to sign, and are stored as they are.

The same table keeps the generation of web UI logins (`ui_login_generation`, a random
token signed into every UI cookie): logging out and setting the admin password replace
it, which ends every UI session at once.

Stored names (never rename them): `site_uuid`, `publishable_key`, `secret_key_hash`,
`admin_password_hash`, `signing_key`, `webhook_secret`, `ui_login_generation`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
import uuid
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from sluice.settings import Settings
from sluice.store.db import Database
from sluice.store.schema import settings_store

HASHED = {"secret_key": "secret_key_hash", "admin_password": "admin_password_hash"}
"""Secrets stored only as a hash, by setting name → stored name."""
CLEAR = ("site_uuid", "publishable_key", "signing_key", "webhook_secret")
"""Values stored as they are."""
LOGIN_GENERATION = "ui_login_generation"
SHOWN_ONCE = ("site_uuid", "publishable_key", "secret_key", "admin_password", "webhook_secret")
"""What `sluice serve` prints when it generates it (the signing key stays inside)."""

# scrypt: 16 MiB of memory and some tens of milliseconds per hash.
_N, _R, _P = 2**14, 8, 1
_CACHE_SECONDS = 1.0
"""How long a process trusts what it read from `settings_store`: a key rotated by
another process is refused here at most this long after."""


def _token(nbytes: int) -> str:
    return secrets.token_urlsafe(nbytes)


GENERATORS: dict[str, Callable[[], str]] = {
    "site_uuid": lambda: str(uuid.uuid4()),
    "publishable_key": lambda: "p" + secrets.token_hex(16),
    "secret_key": lambda: "s" + secrets.token_hex(24),
    "admin_password": lambda: _token(15),
    "signing_key": lambda: _token(32),
    # Standard Webhooks: `whsec_` and the base64 of the key's bytes.
    "webhook_secret": lambda: "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
}


def hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P)
    b64 = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_secret(secret: str, encoded: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        found = hashlib.scrypt(
            secret.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except (ValueError, UnicodeError):
        return False
    return hmac.compare_digest(found, expected)


class ReadOnlySetting(Exception):
    """The value is set in the environment; change it there."""


class Credentials:
    def __init__(self, db: Database, settings: Settings):
        self.db, self.settings = db, settings
        self._stored: dict[str, str] = {}
        self._read_at = -1e9
        self._verified: dict[tuple[str, bytes], bool] = {}
        self._lock = threading.Lock()

    # -- first start ----------------------------------------------------------------

    def ensure(self, names: tuple[str, ...] = tuple(GENERATORS)) -> dict[str, str]:
        """Generate and store whatever of `names` is neither configured nor stored yet.
        Returns the values generated now that people must see, in clear; {} after the
        first start. Two processes starting at once store one value for each name;
        only the one whose value was kept reports it."""
        generated = {}
        with self.db.write() as conn:
            stored = self._read(conn)
            for name in names:
                stored_name = HASHED.get(name, name)
                if getattr(self.settings, name) or stored_name in stored:
                    continue
                value = GENERATORS[name]()
                kept = value if name not in HASHED else hash_secret(value)
                if _insert_new(conn, stored_name, kept) and name in SHOWN_ONCE:
                    generated[name] = value
        self._forget()
        return generated

    # -- values -------------------------------------------------------------------

    def secret(self, name: str) -> str:
        """A value kept in clear (`site_uuid`, `publishable_key`, `signing_key`,
        `webhook_secret`): configured, stored, or generated and stored now."""
        if name not in CLEAR:
            raise KeyError(f"{name} is not kept in clear")
        configured = getattr(self.settings, name)
        if configured:
            return configured
        value = self._stored_values().get(name)
        if value is None:
            # Only this one: a secret generated here would never be shown to anyone.
            self.ensure((name,))
            value = self._stored_values(fresh=True)[name]
        return value

    def check_api_key(self, publishable_key: str | None, secret_key: str) -> bool:
        """True for this installation's secret key, and its publishable key if given."""
        if publishable_key is not None and not hmac.compare_digest(
            publishable_key.encode(), self.secret("publishable_key").encode()
        ):
            return False
        return self._check("secret_key", secret_key)

    def check_admin_password(self, password: str) -> bool:
        # Logins are rare: the stored hash is read afresh, so a password set by
        # `sluice admin set-password` in another process counts at once.
        return self._check("admin_password", password, fresh=True)

    def login_generation(self) -> str:
        """The current generation of web UI logins ("" before the first logout): a
        cookie signed for another is refused. Read afresh on every call (one
        primary-key lookup, no cache), so that a logout or a new password ends the
        sessions in every process at once."""
        with self.db.read() as conn:
            value = conn.execute(
                sa.select(settings_store.c.value).where(settings_store.c.key == LOGIN_GENERATION)
            ).scalar()
        return value or ""

    def end_logins(self) -> None:
        """End every web UI session: cookies issued until now stop working."""
        self._store({LOGIN_GENERATION: _token(12)})

    def _check(self, name: str, presented: str, *, fresh: bool = False) -> bool:
        configured = getattr(self.settings, name)
        if configured:
            return hmac.compare_digest(presented.encode(), configured.encode())
        encoded = self._stored_values(fresh=fresh).get(HASHED[name])
        if encoded is None:
            return False  # never generated: `sluice serve` does it on first start
        # scrypt is slow on purpose; a key already verified against this very hash
        # is not hashed again on every request.
        memo = (encoded, hashlib.sha256(presented.encode()).digest())
        known = self._verified.get(memo)
        if known is None:
            known = verify_secret(presented, encoded)
            with self._lock:
                if len(self._verified) > 256:
                    self._verified.clear()
                self._verified[memo] = known
        return known

    # -- changes ------------------------------------------------------------------

    def rotate_secret_key(self) -> str:
        """A new API secret key; the old one stops working. Returns it in clear."""
        if self.settings.secret_key:
            raise ReadOnlySetting("SLUICE_SECRET_KEY is set in the environment; change it there")
        value = GENERATORS["secret_key"]()
        self._store({HASHED["secret_key"]: hash_secret(value)})
        return value

    def set_admin_password(self, password: str) -> None:
        if self.settings.admin_password:
            raise ReadOnlySetting(
                "SLUICE_ADMIN_PASSWORD is set in the environment; change it there"
            )
        # Whoever knew the old password is logged out too.
        self._store({HASHED["admin_password"]: hash_secret(password), LOGIN_GENERATION: _token(12)})

    def _store(self, values: dict[str, str]) -> None:
        """Store each stored name → value, in one transaction."""
        with self.db.write() as conn:
            for stored_name, value in values.items():
                if not _insert_new(conn, stored_name, value):
                    conn.execute(
                        settings_store.update()
                        .where(settings_store.c.key == stored_name)
                        .values(value=value)
                    )
        self._forget()

    # -- reading ------------------------------------------------------------------

    def _stored_values(self, *, fresh: bool = False) -> dict[str, str]:
        if fresh or time.monotonic() - self._read_at > _CACHE_SECONDS:
            with self.db.read() as conn:
                values = self._read(conn)
            with self._lock:
                self._stored, self._read_at = values, time.monotonic()
        return self._stored

    @staticmethod
    def _read(conn) -> dict[str, str]:
        names = [*CLEAR, *HASHED.values()]
        rows = conn.execute(
            sa.select(settings_store.c.key, settings_store.c.value).where(
                settings_store.c.key.in_(names)
            )
        )
        return dict(rows.all())

    def _forget(self) -> None:
        with self._lock:
            self._read_at = -1e9


def _insert_new(conn, key: str, value: str) -> bool:
    """Insert unless the key is stored already; True when this insert took effect."""
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    inserted = conn.execute(
        dialect.insert(settings_store)
        .values(key=key, value=value)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(settings_store.c.key)
    ).first()
    return inserted is not None
