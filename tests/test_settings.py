"""Every setting is checked when it is read: a bad value is one line naming its
variable, before anything starts (docs/configuration.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sluice.settings import Settings

SLUICE = str(Path(sys.executable).parent / "sluice")

BAD = [
    ("SLUICE_REQUEST_HEADER_TIMEOUT", "-1", "must be more than 0 and at most 86400, not -1"),
    ("SLUICE_REQUEST_HEADER_TIMEOUT", "0", "must be more than 0 and at most 86400, not 0"),
    ("SLUICE_REQUEST_HEADER_TIMEOUT", "abc", "must be a number, not 'abc'"),
    ("SLUICE_REQUEST_BODY_TIMEOUT", "inf", "must be more than 0 and at most 86400, not inf"),
    ("SLUICE_LEASE_SECONDS", "nan", "must be at least 1 and at most 3600, not nan"),
    ("SLUICE_LEASE_SECONDS", "0.5", "must be at least 1 and at most 3600, not 0.5"),
    ("SLUICE_DB_POOL_SIZE", "0", "must be at least 1 and at most 1000, not 0"),
    ("SLUICE_DB_POOL_SIZE", "2.5", "must be a whole number, not '2.5'"),
    ("SLUICE_METRICS_PORT", "0", "must be at least 1 and at most 65535, not 0"),
    ("SLUICE_METRICS_PORT", "65536", "must be at least 1 and at most 65535, not 65536"),
    ("SLUICE_METRICS_PORT", "http", "must be a whole number, not 'http'"),
    ("SLUICE_WEBHOOK_ALLOW_PRIVATE", "maybe", "must be true or false, not 'maybe'"),
    ("SLUICE_SMTP_URL", "smtp://[::1", "must be a smtp:// or smtps://… URL: Invalid IPv6 URL"),
    (
        "SLUICE_SMTP_URL",
        "smtp://mail.example:99999",
        "must be a smtp:// or smtps://… URL: Port out of range 0-65535",
    ),
    ("SLUICE_SMTP_URL", "mail.example", "must be a smtp:// or smtps://… URL, not 'mail.example'"),
    ("SLUICE_PUBLIC_URL", "example.com", "must be a http:// or https://… URL, not 'example.com'"),
    ("SLUICE_PUBLIC_URL", "http://[oops", "must be a http:// or https://… URL: Invalid IPv6 URL"),
    (
        "SLUICE_DATABASE_URL",
        "mysql://db/x",
        "unsupported scheme 'mysql' (use a file path, sqlite:///PATH or postgresql://…)",
    ),
    (
        "SLUICE_DATABASE_URL",
        "postgresql://u@db:port/x",
        "not a valid URL: invalid literal for int() with base 10: 'port'",
    ),
    ("SLUICE_SQLITE_SYNCHRONOUS", "off", "must be full or normal"),
]


@pytest.mark.parametrize(("name", "value", "problem"), BAD)
def test_a_bad_value_is_refused_with_the_name_of_its_variable(name, value, problem):
    with pytest.raises(ValueError) as refused:
        Settings.from_env({name: value})
    assert str(refused.value) == f"{name}: {problem}"


def test_good_values_are_read_with_their_types():
    settings = Settings.from_env(
        {
            "SLUICE_REQUEST_HEADER_TIMEOUT": "0.5",
            "SLUICE_METRICS_PORT": "9100",
            "SLUICE_WEBHOOK_ALLOW_PRIVATE": "off",
            "SLUICE_SMTP_URL": "smtps://u:p@[::1]:465",
            "SLUICE_DATABASE_URL": "postgres://u@db:5432/sluice",
        }
    )
    assert settings.request_header_timeout == 0.5
    assert settings.metrics_port == 9100
    assert settings.webhook_allow_private is False
    assert settings.smtp_url == "smtps://u:p@[::1]:465"


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [BAD[0], BAD[2], BAD[12]],
)
def test_the_cli_refuses_a_bad_setting_in_one_line_before_starting(tmp_path, name, value, problem):
    env = {**os.environ, "SLUICE_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}", name: value}
    done = subprocess.run(
        [SLUICE, "serve", "--port", "1", "--no-worker"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert done.stderr == f"error: {name}: {problem}\n"
    assert done.stdout == ""
    assert not (tmp_path / "s.db").exists()  # nothing started, nothing created
