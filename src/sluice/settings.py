"""Every setting, declared once (SPEC §3.2). Each is read from its environment
variable; CLI flags, where they exist, override it. `docs/configuration.md` lists
them all, and a test keeps the two in step."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields, replace

from sluice.addresses import AddressError, mailbox


@dataclass(frozen=True, kw_only=True)
class Settings:
    database_url: str = "sqlite:///sluice.db"
    public_url: str = "http://127.0.0.1:8000"
    smtp_url: str | None = None
    mail_from: str = "Sluice <noreply@localhost>"
    signing_key: str | None = None
    webhook_allow_private: bool = False
    timezone: str = "UTC"
    site_uuid: str | None = None
    publishable_key: str | None = None
    secret_key: str | None = None
    admin_password: str | None = None
    webhook_secret: str | None = None
    lease_seconds: float = 60.0
    db_pool_size: int = 5
    sqlite_synchronous: str = "full"
    metrics_port: int | None = None
    metrics_token: str | None = None
    request_header_timeout: float = 10.0
    request_body_timeout: float = 60.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "database_url", database_url(self.database_url))
        try:
            mailbox(self.mail_from)  # every email is sent from it: refuse it here, once
        except AddressError as error:
            raise ValueError(f"SLUICE_MAIL_FROM: {error}") from None
        if self.sqlite_synchronous.lower() not in ("full", "normal"):
            raise ValueError("SLUICE_SQLITE_SYNCHRONOUS: must be full or normal")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> Settings:
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = environ.get(env_name(f.name))
            if raw is None or raw == "":
                continue
            values[f.name] = _convert(raw, f.type)
        settings = cls(**values)
        return replace(settings, **{k: v for k, v in overrides.items() if v is not None})


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SCHEMES = ("sqlite", "postgresql", "postgres", "postgresql+psycopg")


def database_url(value: str) -> str:
    """`value` as a SQLAlchemy URL: a plain path (no `scheme://`) is a SQLite file
    there, relative to the working directory; `sqlite://` and `postgresql://` URLs
    are kept as they are. Raises ValueError naming SLUICE_DATABASE_URL for any other
    scheme or a URL SQLAlchemy cannot parse."""
    scheme = _SCHEME.match(value)
    if scheme is None:
        return f"sqlite:///{value}"  # an absolute path gives sqlite:////abs/path
    if scheme.group(1).lower() not in _SCHEMES:
        raise ValueError(
            f"SLUICE_DATABASE_URL: unsupported scheme {scheme.group(1)!r} "
            "(use a file path, sqlite:///PATH or postgresql://…)"
        )
    from sqlalchemy.engine import make_url  # here: `sluice --help` never needs it

    try:
        make_url(value)
    except Exception as error:  # ArgumentError, or ValueError for a bad port
        # Not the value itself: it may hold a password.
        raise ValueError(f"SLUICE_DATABASE_URL: not a valid URL: {error}") from None
    return value


def _convert(raw: str, annotation: str):
    annotation = annotation.removesuffix(" | None")
    if annotation == "bool":
        return raw.lower() in ("1", "true", "yes", "on")
    if annotation == "float":
        return float(raw)
    if annotation == "int":
        return int(raw)
    return raw


def env_name(field_name: str) -> str:
    return f"SLUICE_{field_name.upper()}"


def all_env_names() -> list[str]:
    return [env_name(f.name) for f in fields(Settings)]
