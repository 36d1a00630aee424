"""Every setting, declared once (SPEC §3.2). Each is read from its environment
variable; CLI flags, where they exist, override it. `docs/configuration.md` lists
them all, and a test keeps the two in step."""

from __future__ import annotations

import os
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
