"""Every setting, declared once (SPEC §3.2). Each is read from its environment
variable; CLI flags, where they exist, override it. `docs/configuration.md` lists
them all, and a test keeps the two in step."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from urllib.parse import urlsplit

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
        """Checks every value (from the environment or a CLI flag) before anything
        starts; raises ValueError "SLUICE_NAME: what is wrong"."""
        object.__setattr__(self, "database_url", database_url(self.database_url))
        for f in fields(self):
            value = getattr(self, f.name)
            check = _CHECKS.get(f.name)
            problem = check(value) if check is not None and value is not None else None
            if problem:
                raise ValueError(f"{env_name(f.name)}: {problem}")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> Settings:
        """The settings from `environ` (default os.environ) and `overrides` (CLI flags;
        None means not given); raises ValueError "SLUICE_NAME: what is wrong"."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = environ.get(env_name(f.name))
            if raw is None or raw == "":
                continue
            try:
                values[f.name] = _convert(raw, f.type)
            except ValueError as error:
                raise ValueError(f"{env_name(f.name)}: {error}") from None
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


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _convert(raw: str, annotation: str):
    annotation = annotation.removesuffix(" | None")
    if annotation == "bool":
        if raw.lower() not in _TRUE + _FALSE:
            raise ValueError(f"must be true or false, not {raw!r}")
        return raw.lower() in _TRUE
    if annotation == "float":
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"must be a number, not {raw!r}") from None
    if annotation == "int":
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"must be a whole number, not {raw!r}") from None
    return raw


def _between(low: float, high: float, *, low_open: bool = False) -> Callable[[float], str | None]:
    def check(value: float) -> str | None:
        below = value <= low if low_open else value < low
        if not math.isfinite(value) or below or value > high:
            least = "more than" if low_open else "at least"
            return f"must be {least} {low:g} and at most {high:g}, not {value:g}"
        return None

    return check


def _mailbox(value: str) -> str | None:
    try:
        mailbox(value)  # every email is sent from it: refuse it here, once
    except AddressError as error:
        return str(error)
    return None


def _url(schemes: tuple[str, ...]) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        shape = f"must be a {' or '.join(s + '://' for s in schemes)}… URL"
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 -- raises ValueError for a port that is not one
        except ValueError as error:
            return f"{shape}: {error}"
        if parts.scheme not in schemes or not parts.hostname:
            return f"{shape}, not {value!r}"
        return None

    return check


_CHECKS: dict[str, Callable] = {
    "public_url": _url(("http", "https")),
    "smtp_url": _url(("smtp", "smtps")),
    "mail_from": _mailbox,
    "sqlite_synchronous": lambda v: (
        None if v.lower() in ("full", "normal") else "must be full or normal"
    ),
    "lease_seconds": _between(1, 3600),  # as `sluice worker --lease`
    "db_pool_size": _between(1, 1000),
    "metrics_port": _between(1, 65535),
    "request_header_timeout": _between(0, 86400, low_open=True),
    "request_body_timeout": _between(0, 86400, low_open=True),
}
"""What each setting must be: a function from its value to a problem, or None."""


def env_name(field_name: str) -> str:
    return f"SLUICE_{field_name.upper()}"


def all_env_names() -> list[str]:
    return [env_name(f.name) for f in fields(Settings)]
